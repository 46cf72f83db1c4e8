"""The ladder: the assignment's tweak, done deterministically — one change at a time.

More epochs, more units, another dense layer, more filters, another conv block, a smaller
learning rate; a change is kept only when the metric improved (the next step starts from the
best trial), and a step that helped is tried again before moving on.
"""
from __future__ import annotations

from typing import Any, Callable

from mlci.tuning.strategies.base import PastTrial, Proposal, Strategy, past_trials, same_hparams

Step = tuple[str, str, Callable[[Any], Any]]  # (name, hparam key, new value from old value or None)

# A step is tried again only while it pays: a smaller gain keeps the change but moves on to the next knob.
MIN_DELTA = 0.01

# Knobs that do nothing unless another is set: units without a dense layer, filters without a conv block.
REQUIRES = {"units": ("dense_layers", 1), "filters": ("conv_blocks", 1), "dropout": ("dense_layers", 1)}


def _times(factor: float, cap: float) -> Callable[[Any], Any]:
    def apply(old: Any) -> Any:
        if not isinstance(old, (int, float)) or isinstance(old, bool) or old >= cap:
            return None
        new = old * factor
        return min(int(round(new)), int(cap)) if isinstance(old, int) else min(new, cap)

    return apply


def _plus(step: int, cap: int) -> Callable[[Any], Any]:
    return lambda old: None if not isinstance(old, int) or isinstance(old, bool) or old >= cap else old + step


def _scale_rate(factor: float, floor: float) -> Callable[[Any], Any]:
    return lambda old: None if not isinstance(old, (int, float)) or old * factor < floor else round(old * factor, 8)


def _halve_int(floor: int) -> Callable[[Any], Any]:
    return lambda old: None if not isinstance(old, int) or old <= floor else max(floor, old // 2)


def _to(value: Any) -> Callable[[Any], Any]:
    return lambda old: None if old == value else value


def _layers_wider(old: Any) -> Any:
    if isinstance(old, (list, tuple)) and old and all(isinstance(v, int) for v in old) and max(old) < 1024:
        return [v * 2 for v in old]
    return None


KERAS_STEPS: list[Step] = [
    ("epochs", "epochs", _times(2, 32)),
    ("filters", "filters", _times(2, 256)),
    ("conv_blocks", "conv_blocks", _plus(1, 4)),
    ("dense_layers", "dense_layers", _plus(1, 4)),
    ("units", "units", _times(2, 1024)),
    ("learning_rate", "learning_rate", _scale_rate(0.5, 1e-6)),
]

SKLEARN_STEPS: list[Step] = [
    ("n_neighbors", "n_neighbors", _halve_int(1)),
    ("weights", "weights", _to("distance")),
    ("C", "C", _times(10, 1e6)),
    ("n_estimators", "n_estimators", _times(2, 2000)),
    ("max_depth", "max_depth", _plus(4, 64)),
    ("hidden_layer_sizes", "hidden_layer_sizes", _layers_wider),
    ("alpha", "alpha", _scale_rate(0.1, 1e-8)),
    ("max_iter", "max_iter", _times(2, 10_000)),
    ("epochs", "epochs", _times(2, 256)),
]


def steps_for(framework: str) -> list[Step]:
    return SKLEARN_STEPS if framework == "sklearn" else KERAS_STEPS


def _useful(key: str, hparams: dict[str, Any]) -> bool:
    needs = REQUIRES.get(key)
    if needs is None or needs[0] not in hparams:
        return True
    value = hparams[needs[0]]
    return isinstance(value, int) and value >= needs[1]


def _step_of(trial: PastTrial) -> str | None:
    return trial.proposed_by.split(":", 1)[1] if trial.proposed_by.startswith("ladder:") else None


class LadderStrategy(Strategy):
    name = "ladder"

    def propose(self) -> Proposal | None:
        history = past_trials(self.run)
        if not history:
            return Proposal(dict(self.baseline), "baseline")
        best: PastTrial | None = None
        for trial in history:
            if trial.value is not None and self.objective.better(trial.value, best.value if best else None):
                best = trial
        base = best or history[0]
        steps = [s for s in steps_for(self.framework) if s[1] in base.hparams and _useful(s[1], base.hparams)]
        if not steps:
            return None
        names = [s[0] for s in steps]
        last = history[-1]
        last_step = _step_of(last)
        parent = next((t for t in history if t.number == last.parent), None)
        paid = (last.number == base.number and parent is not None and parent.value is not None
                and abs(last.value - parent.value) >= MIN_DELTA)
        if last_step in names:
            start = names.index(last_step) + (0 if paid else 1)
        else:
            start = 0
        tried_from_base = {_step_of(t) for t in history if t.parent == base.number}
        for k in range(len(steps)):
            name, key, apply = steps[(start + k) % len(steps)]
            if name in tried_from_base:
                continue
            new_value = apply(base.hparams[key])
            if new_value is None:
                continue
            candidate = {**base.hparams, key: new_value}
            if any(same_hparams(candidate, t.hparams) for t in history) or self.was_refused(candidate):
                continue
            return Proposal(candidate, f"ladder:{name}", parent=base.number,
                            change=f"{key} {base.hparams[key]!r} -> {new_value!r}")
        return None
