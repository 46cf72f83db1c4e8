from keras.models import model_from_json
json_file = open('model.json', 'r')
model = model_from_json(json_file.read())
model.compile(loss='binary_crossentropy', optimizer='rmsprop')
model.fit(X, Y, epochs=5)
