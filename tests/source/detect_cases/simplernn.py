from keras.models import Sequential
from keras.layers import SimpleRNN, Dense

model = Sequential()
model.add(SimpleRNN(units=32, input_shape=(10, 1), activation="tanh"))
model.add(Dense(1))
model.compile(optimizer="adam", loss="mean_squared_error")
model.fit(trainX, trainY, epochs=100, batch_size=1)
