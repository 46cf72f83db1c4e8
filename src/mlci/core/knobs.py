"""The knob catalogue: every hyperparameter name mlci knows, declared once.

The search spaces (mlci.tuning.spaces), the script rewriter (mlci.source.rewrite) and the harness's
defaults (mlci.harness.keras_fit) read this table instead of keeping their own lists.
A range is keyed by the space table it belongs to: "keras" (every Keras model), "cnn" / "ann"
(overrides for that architecture), "torch" (where a PyTorch model differs from a Keras one) or a scikit-learn
estimator class name.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["int", "float", "choice"]


def _i(low: int, high: int, log: bool = False) -> dict[str, Any]:
    return {"type": "int", "low": low, "high": high, **({"log": True} if log else {})}


def _f(low: float, high: float, log: bool = False) -> dict[str, Any]:
    return {"type": "float", "low": low, "high": high, **({"log": True} if log else {})}


def _c(*choices: Any) -> dict[str, Any]:
    return {"type": "categorical", "choices": list(choices)}


@dataclass(frozen=True)
class Knob:
    name: str
    kind: Kind
    means: str  # one line a person reads
    frameworks: tuple[str, ...]
    default: Any = None  # what the harness uses when the model's HPARAMS leaves it out (None: no default)
    ranges: dict[str, dict[str, Any]] = field(default_factory=dict)  # space table -> range
    rewritable: bool = False  # the script rewriter finds and changes its literals (all sites move together)


_KNOBS = [
    # the rewritable knobs come first, in the order the rewriter reports sites on one line
    Knob("epochs", "int", "passes over the training data", ("keras", "torch", "sklearn"), default=1, rewritable=True,
         ranges={"keras": _i(1, 10), "ann": _i(1, 20), "MLPClassifier": _i(1, 50), "SGDClassifier": _i(1, 50)}),
    Knob("units", "int", "width of each hidden Dense / nn.Linear layer", ("keras", "torch"), rewritable=True,
         ranges={"keras": _i(16, 256, log=True), "ann": _i(16, 512, log=True)}),
    Knob("filters", "int", "filters of each Conv2D / nn.Conv2d layer", ("keras", "torch"), rewritable=True,
         ranges={"cnn": _i(8, 64, log=True)}),
    Knob("kernel_size", "int", "side of each Conv2D kernel", ("keras", "torch"), rewritable=True, ranges={"cnn": _c(3, 5)}),
    Knob("dropout", "float", "Dropout rate", ("keras", "torch"), rewritable=True, ranges={"keras": _f(0.0, 0.5)}),
    Knob("learning_rate", "float", "the optimizer's learning rate", ("keras", "torch"), default=1e-3, rewritable=True,
         ranges={"keras": _f(1e-4, 1e-2, log=True)}),
    Knob("n_neighbors", "int", "neighbours a k-NN classifier votes with", ("sklearn",), rewritable=True,
         ranges={"KNeighborsClassifier": _i(1, 50, log=True)}),
    Knob("C", "float", "inverse regularisation strength", ("sklearn",), rewritable=True,
         ranges={"LogisticRegression": _f(1e-3, 1e3, log=True), "SVC": _f(1e-2, 1e3, log=True)}),
    Knob("n_estimators", "int", "trees in the ensemble", ("sklearn",), rewritable=True,
         ranges={"RandomForestClassifier": _i(10, 500, log=True)}),
    Knob("max_depth", "int", "deepest a tree may grow", ("sklearn",), rewritable=True,
         ranges={"RandomForestClassifier": _i(2, 64, log=True)}),
    # rewritten in PyTorch scripts only (DataLoader(batch_size=...)); Keras scripts' fit keeps its own
    Knob("batch_size", "int", "samples per gradient step", ("keras", "torch", "sklearn"), default=32, rewritable=True,
         ranges={"keras": _c(32, 64, 128), "MLPClassifier": _c(32, 64, 128, 256)}),
    # Keras (and PyTorch modules)
    Knob("dense_layers", "int", "hidden Dense layers", ("keras", "torch"), ranges={"keras": _i(1, 3), "cnn": _i(0, 2)}),
    Knob("optimizer", "choice", "the optimizer (Keras' names; the PyTorch harness maps them to torch.optim)",
         ("keras", "torch"), default="adam",
         ranges={"keras": _c("adam", "rmsprop", "nadam", "sgd"), "torch": _c("adam", "adamw", "rmsprop", "sgd")}),
    Knob("activation", "choice", "activation of the hidden layers", ("keras", "torch"),
         ranges={"keras": _c("relu", "elu", "tanh"), "torch": _c("relu", "gelu", "tanh")}),
    Knob("conv_blocks", "int", "Conv2D + pooling blocks", ("keras", "torch"), ranges={"cnn": _i(1, 3)}),
    Knob("pooling", "choice", "pooling after each conv block", ("keras", "torch"), ranges={"cnn": _c("max", "avg")}),
    # scikit-learn
    Knob("weights", "choice", "how k-NN weighs its neighbours", ("sklearn",),
         ranges={"KNeighborsClassifier": _c("uniform", "distance")}),
    Knob("p", "choice", "Minkowski power of the k-NN distance", ("sklearn",), ranges={"KNeighborsClassifier": _c(1, 2)}),
    Knob("max_iter", "int", "most solver iterations", ("sklearn",),
         ranges={"LogisticRegression": _i(100, 3000, log=True), "MLPClassifier": _i(50, 1000, log=True)}),
    Knob("tol", "float", "solver stopping tolerance", ("sklearn",), ranges={"LogisticRegression": _f(1e-6, 1e-2, log=True)}),
    Knob("min_samples_split", "int", "fewest samples a tree node splits", ("sklearn",),
         ranges={"RandomForestClassifier": _i(2, 20)}),
    Knob("min_samples_leaf", "int", "fewest samples in a tree leaf", ("sklearn",),
         ranges={"RandomForestClassifier": _i(1, 10)}),
    Knob("max_features", "choice", "features each split considers", ("sklearn",),
         ranges={"RandomForestClassifier": _c("sqrt", "log2")}),
    Knob("gamma", "float", "RBF/poly kernel coefficient", ("sklearn",), ranges={"SVC": _f(1e-4, 1.0, log=True)}),
    Knob("kernel", "choice", "SVC kernel", ("sklearn",), ranges={"SVC": _c("rbf", "poly", "linear")}),
    Knob("hidden_layer_sizes", "choice", "MLP hidden layer widths", ("sklearn",),
         ranges={"MLPClassifier": _c([64], [128], [256], [128, 64], [256, 128])}),
    Knob("alpha", "float", "L2 penalty (MLP) or regularisation (SGD)", ("sklearn",),
         ranges={"MLPClassifier": _f(1e-6, 1e-1, log=True), "SGDClassifier": _f(1e-7, 1e-1, log=True)}),
    Knob("learning_rate_init", "float", "MLP initial learning rate", ("sklearn",),
         ranges={"MLPClassifier": _f(1e-4, 1e-1, log=True)}),
    Knob("loss", "choice", "SGD loss function", ("sklearn",),
         ranges={"SGDClassifier": _c("hinge", "log_loss", "modified_huber")}),
    Knob("penalty", "choice", "SGD regularisation", ("sklearn",), ranges={"SGDClassifier": _c("l2", "l1", "elasticnet")}),
    Knob("eta0", "float", "SGD initial learning rate", ("sklearn",), ranges={"SGDClassifier": _f(1e-4, 1.0, log=True)}),
]
KNOBS: dict[str, Knob] = {knob.name: knob for knob in _KNOBS}

# The learning rates each Keras optimizer trains well with: SGD wants ten to a hundred times Adam's.
LEARNING_RATES: dict[str, tuple[float, float]] = {
    "sgd": (1e-3, 0.3), "adagrad": (1e-3, 0.3), "adadelta": (1e-2, 1.0), "adam": (1e-4, 1e-2),
    "adamw": (1e-4, 1e-2), "nadam": (1e-4, 1e-2), "adamax": (2e-4, 2e-2), "rmsprop": (1e-4, 1e-2),
}


def learning_rate_range(optimizer: object) -> tuple[float, float]:
    """The learning-rate range of an optimizer, by its Keras name (Adam's for one mlci does not know)."""
    return LEARNING_RATES.get(str(optimizer).lower(), LEARNING_RATES["adam"])

REWRITABLE: tuple[str, ...] = tuple(k.name for k in _KNOBS if k.rewritable)
REWRITABLE_INTS: frozenset[str] = frozenset(k.name for k in _KNOBS if k.rewritable and k.kind == "int")


def default(name: str) -> Any:
    """The harness default of a knob."""
    return KNOBS[name].default


def space(table: str, names: tuple[str, ...], fallback: str | tuple[str, ...] | None = None) -> dict[str, dict[str, Any]]:
    """The search table `table`: each knob's range for it (else for the first `fallback` that has one), in the
    order of `names`."""
    fallbacks = (fallback,) if isinstance(fallback, str) else tuple(fallback or ())
    found = {}
    for name in names:
        ranges = KNOBS[name].ranges
        entry = next((ranges[key] for key in (table, *fallbacks) if key in ranges), None)
        if entry is None:
            raise KeyError(f"knob {name!r} has no range for {table!r}")
        found[name] = dict(entry, **({"choices": list(entry["choices"])} if "choices" in entry else {}))
    return found
