"""A small convolutional network for handwritten digits (the default example of `make run`).

It starts deliberately weak (one epoch, few filters) so a newcomer sees mlci tweak it past the threshold.
"""
import keras
from keras import layers

HPARAMS = {
    "conv_blocks": 1,
    "filters": 4,
    "kernel_size": 3,
    "dense_layers": 0,
    "units": 32,
    "dropout": 0.0,
    "learning_rate": 0.001,
    "epochs": 1,
    "batch_size": 64,
}


def build_model(hp):
    model = keras.Sequential([keras.Input(shape=(28, 28, 1))])
    for block in range(hp["conv_blocks"]):
        model.add(layers.Conv2D(hp["filters"] * 2**block, hp["kernel_size"], padding="same", activation="relu"))
        model.add(layers.MaxPooling2D(2))
    model.add(layers.Flatten())
    for _ in range(hp["dense_layers"]):
        model.add(layers.Dense(hp["units"], activation="relu"))
        if hp["dropout"]:
            model.add(layers.Dropout(hp["dropout"]))
    model.add(layers.Dense(10, activation="softmax"))
    model.compile(optimizer=keras.optimizers.Adam(hp["learning_rate"]),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
