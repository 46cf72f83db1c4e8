from keras.models import Sequential
from keras import layers
from keras.layers import recurrent

# the RNN cell is chosen once; the rest of the script only says RNN
RNN = recurrent.LSTM
HIDDEN_SIZE = 128

model = Sequential()
model.add(RNN(HIDDEN_SIZE, input_shape=(7, 12)))
model.add(layers.RepeatVector(4))
for _ in range(1):
    model.add(RNN(HIDDEN_SIZE, return_sequences=True))
model.add(layers.TimeDistributed(layers.Dense(12, activation="softmax")))
model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
for iteration in range(1, 200):
    model.fit(x_train, y_train, batch_size=128, epochs=1, validation_data=(x_val, y_val))
