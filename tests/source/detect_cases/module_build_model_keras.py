"""A model module: the harness fits what build_model returns."""
from tensorflow import keras


def load_data():
    return keras.datasets.mnist.load_data()


def build_model(hp):
    model = keras.Sequential()
    model.add(keras.Input((28, 28, 1)))
    for _ in range(hp.get("blocks", 2)):
        model.add(keras.layers.Conv2D(hp.get("filters", 32), 3, activation="relu"))
    model.add(keras.layers.Flatten())
    model.add(keras.layers.Dense(10, activation="softmax"))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
