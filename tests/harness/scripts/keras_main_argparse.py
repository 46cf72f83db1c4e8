#!/usr/bin/env python
"""A script with main() and argparse: runs with its own sys.argv (no options: the defaults)."""
import argparse
import sys

import numpy as np
from tensorflow import keras


def build():
    model = keras.Sequential([
        keras.layers.Input(shape=(28, 28)),
        keras.layers.Flatten(),
        keras.layers.Dense(12, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def main(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args(argv[1:])
    (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    model = build()
    model.fit(x_train / 255.0, y_train, epochs=args.epochs, verbose=0)
    loss, accuracy = model.evaluate(x_test / 255.0, y_test, verbose=0)
    print("accuracy: %.4f" % accuracy)


if __name__ == "__main__":
    main(sys.argv)
