"""A dense (fully connected) network for handwritten digits.

mlci widens and deepens it (units, dense layers) and trains longer until the threshold is met.
"""
import keras
from keras import layers

HPARAMS = {
    "dense_layers": 1,
    "units": 16,
    "dropout": 0.0,
    "learning_rate": 0.001,
    "epochs": 2,
    "batch_size": 64,
}


def build_model(hp):
    model = keras.Sequential([keras.Input(shape=(28, 28, 1)), layers.Flatten()])
    for _ in range(hp["dense_layers"]):
        model.add(layers.Dense(hp["units"], activation="relu"))
        if hp["dropout"]:
            model.add(layers.Dropout(hp["dropout"]))
    model.add(layers.Dense(10, activation="softmax"))
    model.compile(optimizer=keras.optimizers.Adam(hp["learning_rate"]),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
