from tensorflow import keras

layers = keras.layers
model = keras.Sequential([layers.Dense(128, activation="relu"), layers.Dense(10)])
model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy")
model.fit(x_train, y_train, batch_size=64)
