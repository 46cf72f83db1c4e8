# Functional API; prints the accuracy as a percentage.
from tensorflow import keras
from tensorflow.keras import layers
import numpy as np

(x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
x_train = x_train.reshape(60000 if len(x_train) == 60000 else len(x_train), 784) / 255.0
x_test = x_test.reshape(len(x_test), 784) / 255.0

inputs = keras.Input(shape=(784,))
x = layers.Dense(24, activation="relu")(inputs)
outputs = layers.Dense(10, activation="softmax")(x)
model = keras.Model(inputs=inputs, outputs=outputs)

model.compile(loss="sparse_categorical_crossentropy",
              optimizer=keras.optimizers.RMSprop(learning_rate=0.001),
              metrics=["accuracy"])
model.fit(x_train, y_train, batch_size=64, epochs=1, verbose=0)

scores = model.predict(x_test, verbose=0)
acc = (scores.argmax(axis=1) == y_test).mean()
print(f"Test accuracy: {acc * 100:.2f}%")
