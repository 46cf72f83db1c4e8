"""Search spaces: which values the tuner may give each hyperparameter, per kind of model.

A space names only knobs the model module uses (its HPARAMS keys); a module's SEARCH_SPACE and
`[space]` in mlci.toml override the built-in ranges. Bad entries are one-line ConfigErrors.
"""
from __future__ import annotations

import ast
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlci.core.errors import ConfigError
from mlci.core.knobs import LEARNING_RATES, learning_rate_range, space

TYPES = ("int", "float", "categorical")


@dataclass(frozen=True)
class Param:
    """One searchable hyperparameter: an int or float range, or a list of choices."""

    name: str
    type: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        if self.type == "categorical":
            return {"type": "categorical", "choices": list(self.choices)}
        out: dict[str, Any] = {"type": self.type, "low": self.low, "high": self.high}
        if self.log:
            out["log"] = True
        if self.step is not None:
            out["step"] = self.step
        return out

    def contains(self, value: Any) -> bool:
        if self.type == "categorical":
            return any(_same(value, c) for c in self.choices)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.type == "int" and not float(value).is_integer():
            return False
        return self.low <= value <= self.high

    def widened(self, value: Any) -> "Param":
        """The same entry grown to hold `value` (the user's own baseline is always a valid point)."""
        if self.contains(value) or value is None:
            return self
        if self.type == "categorical":
            return Param(self.name, "categorical", choices=(*self.choices, value))
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return self
        if self.log and value <= 0:
            return self  # a log range cannot hold 0; the baseline keeps it, the search does not
        low, high = min(self.low, value), max(self.high, value)
        if self.type == "int":
            if not float(value).is_integer():
                return self
            low, high = int(low), int(high)
        step = self.step
        if step is not None and ((value - low) / step) % 1:
            step = None
        return Param(self.name, self.type, low, high, self.log, step)


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


# ----------------------------------------------------------------------------- built-in spaces

# The ranges live in the knob catalogue (mlci.core.knobs); a table here only names its knobs, in search order.
KERAS_KNOBS = ("learning_rate", "batch_size", "epochs", "dropout", "units", "dense_layers", "optimizer", "activation")
KERAS: dict[str, dict[str, Any]] = space("keras", KERAS_KNOBS)  # shared by every architecture
CNN: dict[str, dict[str, Any]] = space("cnn", KERAS_KNOBS + ("conv_blocks", "filters", "kernel_size", "pooling"),
                                       fallback="keras")
ANN: dict[str, dict[str, Any]] = space("ann", KERAS_KNOBS, fallback="keras")
# PyTorch modules (nn.Module from build_model): the same knobs, with torch's own optimizer and activation choices.
TORCH_CNN: dict[str, dict[str, Any]] = space("cnn", KERAS_KNOBS + ("conv_blocks", "filters", "kernel_size", "pooling"),
                                             fallback=("torch", "keras"))
TORCH_MLP: dict[str, dict[str, Any]] = space("ann", KERAS_KNOBS, fallback=("torch", "keras"))

# scikit-learn estimators by type: the class the model module builds decides the table.
SKLEARN_KNOBS = {
    "KNeighborsClassifier": ("n_neighbors", "weights", "p"),
    "LogisticRegression": ("C", "max_iter", "tol"),
    "RandomForestClassifier": ("n_estimators", "max_depth", "min_samples_split", "min_samples_leaf", "max_features"),
    "SVC": ("C", "gamma", "kernel"),
    "MLPClassifier": ("hidden_layer_sizes", "alpha", "learning_rate_init", "max_iter", "epochs", "batch_size"),
    "SGDClassifier": ("alpha", "loss", "penalty", "epochs", "eta0"),
}
SKLEARN: dict[str, dict[str, dict[str, Any]]] = {cls: space(cls, names) for cls, names in SKLEARN_KNOBS.items()}
SKLEARN_ANY: dict[str, dict[str, Any]] = {k: v for table in SKLEARN.values() for k, v in table.items()}


# ----------------------------------------------------------------------------- parsing and checks

BOUND = 1e15  # |low|, |high| of a range: integers stay exact in a float, differences finite
MAX_STEPS = 1e9  # a stepped range has at most this many values (Optuna counts them in Decimal)


def parse_param(name: str, entry: Any, source: str) -> Param:
    """One `{"type": ..., ...}` entry, checked: a ConfigError names the source and the key."""
    where = f"{source}: space '{name}'"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} must be a table such as {{type = \"int\", low = 1, high = 8}}, got {entry!r}")
    unknown = set(entry) - {"type", "low", "high", "log", "step", "choices"}
    if unknown:
        raise ConfigError(f"{where} has unknown key(s) {', '.join(sorted(unknown))}",
                          hint="allowed: type, low, high, log, step, choices")
    kind = entry.get("type")
    if kind not in TYPES:
        raise ConfigError(f"{where} has type {kind!r}", hint=f"use one of {', '.join(TYPES)}")
    if kind == "categorical":
        choices = entry.get("choices")
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{where} needs a non-empty list 'choices'", hint='e.g. choices = ["max", "avg"]')
        return Param(name, kind, choices=tuple(choices))
    low, high = entry.get("low"), entry.get("high")
    for key, value in (("low", low), ("high", high)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{where} needs a number '{key}', got {value!r}")
        if abs(value) > BOUND:  # beyond it the sampler's arithmetic overflows (high - low, steps)
            raise ConfigError(f"{where} has {key} = {value!r}", hint=f"use a number between {-BOUND:g} and {BOUND:g}")
        if kind == "int" and not float(value).is_integer():
            raise ConfigError(f"{where} is an int range but {key} = {value!r}", hint="use whole numbers or type = \"float\"")
    if low > high:
        raise ConfigError(f"{where} has low = {low!r} > high = {high!r}", hint="swap them")
    log = entry.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"{where} has log = {log!r}", hint="use true or false")
    if log and low <= 0:
        raise ConfigError(f"{where} is a log range with low = {low!r}", hint="a log range needs low > 0")
    step = entry.get("step")
    if step is not None and (isinstance(step, bool) or not isinstance(step, (int, float)) or step <= 0):
        raise ConfigError(f"{where} has step = {step!r}", hint="use a positive number")
    if step is not None and log:
        raise ConfigError(f"{where} has both step and log", hint="use one of them")
    if step is not None and not math.isfinite(step):
        raise ConfigError(f"{where} has step = {step!r}", hint="use a positive number")
    if step is not None and high > low and not (high - low) / MAX_STEPS <= step <= high - low:
        raise ConfigError(f"{where} has step = {step!r} for the range {low!r}..{high!r}",
                          hint=f"use a step between (high - low) / {MAX_STEPS:g} and high - low")
    if kind == "int" and step is not None and not float(step).is_integer():
        raise ConfigError(f"{where} is an int range but step = {step!r}", hint="use a whole number")
    if kind == "int":
        low, high = int(low), int(high)
        step = int(step) if step is not None else None
    return Param(name, kind, low, high, log, step)


def parse_space(table: Any, source: str) -> dict[str, Param]:
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: the search space must be a table of hyperparameters, got {type(table).__name__}")
    return {name: parse_param(name, entry, source) for name, entry in table.items()}


# ----------------------------------------------------------------------------- what the model uses

def estimator_class(model_file: Path) -> str | None:
    """The scikit-learn class the module builds (the first known class name it mentions)."""
    try:
        tree = ast.parse(Path(model_file).read_bytes())
    except (OSError, SyntaxError, ValueError):
        return None
    for node in ast.walk(tree):
        name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None
        if name in SKLEARN:
            return name
    return None


class NotLiteral(ValueError):
    """A module-level assignment that is not a plain literal (line number in args[0])."""


def module_literal(model_file: Path, name: str) -> Any:
    """The literal value of `NAME = ...` at the top of a module, read without importing it; None if absent."""
    try:
        tree = ast.parse(Path(model_file).read_bytes())
    except (OSError, SyntaxError, ValueError):
        return None
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        if any(isinstance(t, ast.Name) and t.id == name for t in targets) and node.value is not None:
            try:
                return ast.literal_eval(node.value)
            except (ValueError, SyntaxError, TypeError):
                raise NotLiteral(node.lineno) from None
    return None


def module_space(model_file: Path) -> dict[str, Any] | None:
    """The module's SEARCH_SPACE literal."""
    try:
        return module_literal(model_file, "SEARCH_SPACE")
    except NotLiteral as exc:
        raise ConfigError(f"{model_file}:{exc.args[0]}: SEARCH_SPACE must be a literal dict",
                          hint="write it with plain numbers, strings and lists") from None


def builtin_table(framework: str, architecture: str, model_file: Path | None) -> dict[str, dict[str, Any]]:
    if framework == "sklearn":
        found = estimator_class(model_file) if model_file else None
        return SKLEARN.get(found, SKLEARN_ANY) if found else SKLEARN_ANY
    if framework == "torch":
        return TORCH_CNN if architecture == "cnn" else TORCH_MLP
    return CNN if architecture == "cnn" else ANN


def _compatible(param: Param, default: Any) -> bool:
    """Does the knob take values of this type? (The harness refuses an int where a string was.)"""
    if default is None:
        return True
    if param.type == "categorical":
        kinds = {type(c) for c in param.choices}
        if isinstance(default, (list, tuple)):
            return all(isinstance(c, (list, tuple)) for c in param.choices)
        if isinstance(default, bool):
            return kinds == {bool}
        if isinstance(default, (int, float)):
            return all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in param.choices) and (
                isinstance(default, float) or all(isinstance(c, int) for c in param.choices))
        return all(isinstance(c, type(default)) for c in param.choices)
    if isinstance(default, bool):
        return False
    if param.type == "int":
        return isinstance(default, int)
    return isinstance(default, (int, float))


def space_for(baseline: dict[str, Any], *, framework: str, architecture: str, model_file: Path | None = None,
              overrides: dict[str, Any] | None = None, source: str = "mlci.toml") -> dict[str, Param]:
    """The space a run searches: built-in ranges for its kind, then SEARCH_SPACE, then `[space]`.

    Built-in ranges are kept only for knobs the module has (HPARAMS keys) and whose type fits;
    a knob named in SEARCH_SPACE or `[space]` must exist in HPARAMS. Each range is widened to
    hold the user's own value, so the baseline is a point of the space.
    """
    space = {}
    for name, entry in builtin_table(framework, architecture, model_file).items():
        if name in baseline:
            param = parse_param(name, entry, "built-in space")
            if _compatible(param, baseline[name]):
                space[name] = param
    explicit: list[tuple[str, dict[str, Any]]] = []
    declared = module_space(model_file) if model_file else None
    if declared is not None:
        explicit.append((f"{model_file} (SEARCH_SPACE)", declared))
    if overrides:
        explicit.append((f"{source} [space]", overrides))
    for where, table in explicit:
        for name, param in parse_space(table, where).items():
            if baseline and name not in baseline:
                raise ConfigError(f"{where}: space '{name}' is not a hyperparameter of the model",
                                  hint=f"the model's HPARAMS keys are: {', '.join(sorted(baseline)) or 'none'}")
            if name in baseline and not _compatible(param, baseline[name]):
                raise ConfigError(f"{where}: space '{name}' gives {param.type} values but the model's default is "
                                  f"{baseline[name]!r}", hint="make the space's values the type of the default")
            space[name] = param
    return {name: param.widened(baseline.get(name)) for name, param in space.items()}


# Knobs that count layers a plain script already has: its rewriter adds layers, never removes them.
STRUCTURAL = ("dense_layers", "conv_blocks")


def script_space(space: dict[str, Param], baseline: dict[str, Any]) -> dict[str, Param]:
    """A plain script's space starts from the script: a layer count never goes below the script's own."""
    floored = dict(space)
    for name in STRUCTURAL:
        param, have = space.get(name), baseline.get(name)
        if param is None or param.type != "int" or not isinstance(have, int) or param.low >= have:
            continue
        floored[name] = Param(name, "int", have, max(param.high, have), param.log, param.step)
    return floored


def rate_range(optimizer: Any, baseline: dict[str, Any]) -> tuple[float, float]:
    """The learning rates searched with this optimizer; the user's own rate stays inside its optimizer's range."""
    low, high = learning_rate_range(optimizer)
    rate = baseline.get("learning_rate")
    if str(optimizer).lower() == str(baseline.get("optimizer", "")).lower() and isinstance(rate, (int, float)) \
            and not isinstance(rate, bool) and rate > 0:
        low, high = min(low, float(rate)), max(high, float(rate))
    return low, high


def optimizer_space(space: dict[str, Param], baseline: dict[str, Any]) -> dict[str, Param]:
    """With the optimizer a knob, the learning rate's entry spans every optimizer's range (each trial asks
    within its own optimizer's range: see OptunaStrategy._ask)."""
    if "optimizer" not in space or "learning_rate" not in space or space["learning_rate"].type != "float":
        return space
    ranges = [rate_range(choice, baseline) for choice in space["optimizer"].choices if str(choice).lower()
              in LEARNING_RATES]
    if not ranges:
        return space
    rate = space["learning_rate"]
    widened = Param("learning_rate", "float", min([rate.low, *(r[0] for r in ranges)]),
                    max([rate.high, *(r[1] for r in ranges)]), log=True)
    return {**space, "learning_rate": widened}


# ----------------------------------------------------------------------------- Optuna bridge

def encode(value: Any) -> Any:
    """Optuna's categorical choices are scalars: a list (hidden_layer_sizes) travels as JSON text."""
    return json.dumps(value) if isinstance(value, (list, tuple)) else value


def decode(param: Param, value: Any) -> Any:
    if param.type == "categorical" and isinstance(value, str):
        for choice in param.choices:
            if isinstance(choice, (list, tuple)) and encode(choice) == value:
                return list(choice)
    if param.type == "int":
        return int(value)
    if param.type == "float":
        return float(value)
    return value


def distributions(space: dict[str, Param]) -> dict[str, Any]:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    found = {}
    for name, p in space.items():
        if p.type == "categorical":
            found[name] = CategoricalDistribution([encode(c) for c in p.choices])
        elif p.type == "int":
            found[name] = IntDistribution(int(p.low), int(p.high), log=p.log, step=int(p.step or 1))
        else:
            found[name] = FloatDistribution(float(p.low), float(p.high), log=p.log, step=p.step)
    return found
