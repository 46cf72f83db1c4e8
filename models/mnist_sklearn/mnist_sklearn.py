"""A k-nearest-neighbours classifier for handwritten digits (scikit-learn).

mlci tunes n_neighbors and the weighting until the accuracy passes the threshold.
"""
from sklearn.neighbors import KNeighborsClassifier

HPARAMS = {"n_neighbors": 40, "weights": "uniform"}


def build_model(hp):
    return KNeighborsClassifier(n_neighbors=hp["n_neighbors"], weights=hp["weights"])
