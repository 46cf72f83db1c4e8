"""Standalone keras, list-style Sequential with dropout; writes accuracy.txt (a fraction)."""
import numpy as np
import keras
from keras import layers
from keras.datasets import mnist

(x_train, y_train), (x_test, y_test) = mnist.load_data()
x_train = x_train.reshape(-1, 784).astype("float32") / 255
x_test = x_test.reshape(-1, 784).astype("float32") / 255

model = keras.Sequential([
    keras.Input(shape=(784,)),
    layers.Dense(32, activation="relu"),
    layers.Dropout(0.5),
    layers.Dense(10, activation="softmax"),
])
model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.0005),
              loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(x_train, y_train, epochs=2, batch_size=128, verbose=0)

predicted = np.argmax(model.predict(x_test, verbose=0), axis=1)
accuracy = float(np.mean(predicted == y_test))
with open("accuracy.txt", "w") as f:
    f.write(str(accuracy))
