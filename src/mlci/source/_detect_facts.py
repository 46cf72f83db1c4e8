"""The facts detection decides on: which models are built, which are trained, which layers (`Facts`).

Two readers fill them: the AST reader (`_detect_ast.py`) and a token reader for code no AST can be built
from (`_detect_tokens.py`); `detect.py` decides from the facts.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlci.source._detect_vocab import DEFAULT_ALIASES, UNSUPPORTED, Symbol, classify

# Keyword arguments of Keras' fit that scikit-learn, xgboost and lightgbm estimators do not take.
KERAS_FIT_KEYWORDS = {"epochs", "nb_epoch", "batch_size", "validation_split", "steps_per_epoch", "initial_epoch",
                      "validation_steps", "validation_freq"}
TRAIN_METHODS = {"fit", "fit_generator", "train_on_batch", "partial_fit", "fit_one_cycle", "fine_tune",
                 "fit_transform", "fit_predict", "fit_resample"}
# Methods that hand back the model they are called on (torch's .to(device), sklearn's fit returns self).
PASS_THROUGH = {"to", "cuda", "cpu", "double", "float", "half", "train", "eval", "set_params", "fit",
                "partial_fit", "requires_grad_", "share_memory", "compile"}
KNOWN_TOPS = {"tensorflow", "keras", "tf_keras", "torch", "torchvision", "timm", "sklearn", "skorch", "fastai",
              "pytorch_lightning", "lightning", "scikeras", "imblearn", *UNSUPPORTED}
# Bare names a file uses without an import we can see (a notebook, `from helpers import *`).
KERAS_BARE = {"Sequential": "models", "Model": "models", "Dense": "layers", "Conv1D": "layers",
              "Conv2D": "layers", "Conv3D": "layers", "Convolution1D": "layers", "Convolution2D": "layers",
              "MaxPooling2D": "layers", "MaxPooling1D": "layers", "Flatten": "layers", "Dropout": "layers",
              "LSTM": "layers", "GRU": "layers", "SimpleRNN": "layers", "Embedding": "layers",
              "SeparableConv2D": "layers", "DepthwiseConv2D": "layers", "ConvLSTM2D": "layers",
              "Bidirectional": "layers", "Conv2DTranspose": "layers"}
TORCH_BARE = {"Conv1d", "Conv2d", "Conv3d", "Linear", "LSTM", "GRU", "RNN", "Module"}
SKLEARN_BARE = {"RandomForestClassifier": "ensemble", "RandomForestRegressor": "ensemble",
                "GradientBoostingClassifier": "ensemble", "LogisticRegression": "linear_model",
                "LinearRegression": "linear_model", "SVC": "svm", "SVR": "svm", "LinearSVC": "svm",
                "KNeighborsClassifier": "neighbors", "DecisionTreeClassifier": "tree", "GaussianNB": "naive_bayes",
                "MLPClassifier": "neural_network", "KMeans": "cluster"}


@dataclass(frozen=True)
class Model:
    """A value known to be a model (or a fitted transformer) of one framework."""

    framework: str
    name: str  # what a person reads: "keras.Sequential", "Net [torch.nn.Module subclass]"
    line: int  # where it is built
    scope: int  # the scope whose layers build it
    arch: str | None = None
    role: str = "model"  # model | transformer
    facts: "Facts | None" = field(default=None, compare=False, hash=False, repr=False)


@dataclass
class Trained:
    model: Model
    line: int
    how: str  # "fit", "build_model returns it", "cross_val_score", "training loop"


@dataclass
class Layer:
    symbol: Symbol
    line: int
    scope: int


def display(symbol: Symbol) -> str:
    """`keras.Sequential`, `sklearn.SVC`, `torch.nn.Linear`: short, but the name a person would import."""
    name = symbol.name.removesuffix(".from_pretrained").removesuffix(".from_config")
    last = name.rsplit(".", 1)[-1]
    if symbol.framework in ("keras", "sklearn") and not symbol.name.startswith("tensorflow."):
        return f"{symbol.framework}.{last}"
    if name.startswith("tensorflow.") and symbol.framework == "keras" and ".keras." in name:
        return f"keras.{last}"
    return name


@dataclass
class Facts:
    """What one file says; `layers_for` narrows layers to those that build the given models."""

    trained: list[Trained] = field(default_factory=list)
    constructed: list[Model] = field(default_factory=list)
    layers: list[Layer] = field(default_factory=list)
    imports: list[tuple[str, int]] = field(default_factory=list)  # (top package, line)
    imported_names: list[str] = field(default_factory=list)  # "sklearn.metrics.accuracy_score", "tensorflow"
    local_imports: list[tuple[str, int]] = field(default_factory=list)  # modules that may be sibling files
    signals: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    unresolved_fits: list[int] = field(default_factory=list)
    keras_style_fits: list[int] = field(default_factory=list)  # unresolved, but called the way only Keras is
    module_mode: bool = False
    never_instantiated: set[Model] = field(default_factory=set)  # model classes defined here, never called here
    aliases: dict[str, str] = field(default_factory=dict)
    stars: list[str] = field(default_factory=list)
    bound: set[str] = field(default_factory=set)
    where: Any = field(default=None, repr=False)  # detect._Where: maps lines back to files and cells
    path: Path | None = None

    def layers_for(self, models: list[Model]) -> list[Layer]:
        return list(self.layers)

    def _training_loops(self) -> None:
        """A PyTorch loop (backward, optimizer.step) or a GradientTape loop trains the models built here.

        Not a model class that this file defines but never instantiates, when it instantiates another.
        """
        done = {t.model for t in self.trained}
        for framework in ("torch", "keras"):
            lines = self.signals.get(framework)
            if not lines:
                continue
            built = [model for model in self.constructed if model.framework == framework]
            for model in [m for m in built if m not in self.never_instantiated] or built:
                if model not in done:
                    done.add(model)
                    self.trained.append(Trained(model, max(lines), "training loop"))

    def imported_frameworks(self) -> set[str]:
        return {top for top, _ in self.imports}

    # ----- name resolution shared by both readers
    def resolve_name(self, name: str) -> str | None:
        if name in self.aliases:
            return self.aliases[name]
        for module in self.stars:
            symbol = classify(f"{module}.{name}")
            if symbol is not None and symbol.role != "util":
                return f"{module}.{name}"
        if name in self.bound:
            return None
        if name in DEFAULT_ALIASES:
            return DEFAULT_ALIASES[name]
        tops = self.imported_frameworks()
        if name in TORCH_BARE and "torch" in tops and (name not in KERAS_BARE or not tops & {"keras", "tensorflow"}):
            return f"torch.nn.{name}"
        keras_seen = bool(tops & {"keras", "tensorflow", "tf_keras"})
        if name in KERAS_BARE and (keras_seen or ("torch" not in tops and name not in ("Model", "Sequential"))):
            return f"keras.{KERAS_BARE[name]}.{name}"
        if name in SKLEARN_BARE:
            return f"sklearn.{SKLEARN_BARE[name]}.{name}"
        return None

    def resolve_dotted(self, dotted: str) -> str | None:
        head, _, rest = dotted.partition(".")
        base = self.resolve_name(head)
        if base is None:
            return None
        return f"{base}.{rest}" if rest else base

    def add_import(self, module: str, asname: str | None, line: int, level: int = 0,
                   names: list[tuple[str, str | None]] | None = None) -> None:
        """`import module as asname`, or with `names`: `from module import name as asname, ...`."""
        if module:
            self.local_imports.append(("." * level + module, line))
        top = module.split(".")[0] if module else ""
        if top and not level:
            self.imports.append((top, line))
        if not level:
            self.imported_names.extend([module] if names is None else [f"{module}.{name}" for name, _ in names])
        if names is None:
            if asname:
                self.aliases[asname] = module
            else:
                self.aliases.setdefault(top, top)
            return
        for name, alias in names:
            if name == "*":
                if not level:
                    self.stars.append(module)
                continue
            if level:
                continue
            self.aliases[alias or name] = f"{module}.{name}"
