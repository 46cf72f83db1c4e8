from keras.models import Sequential
from keras.layers import Dense, Dropout

print "building the model"
model = Sequential()
model.add(Dense(512, input_dim=784, activation="relu"))
model.add(Dropout(0.2))
model.add(Dense(10, activation="softmax"))
model.compile(loss="categorical_crossentropy", optimizer="rmsprop")
try:
    model.fit(X_train, Y_train, nb_epoch=20, batch_size=128)
except Exception, e:
    print "training failed:", e
print "done"
