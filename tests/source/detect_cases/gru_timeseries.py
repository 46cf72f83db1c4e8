import keras

model = keras.Sequential()
model.add(keras.layers.GRU(32, input_shape=(30, 1)))
model.add(keras.layers.Dense(1))
model.compile(loss="mse", optimizer="adam")
history = model.fit(X, y, epochs=20)
