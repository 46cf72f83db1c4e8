"""The objective of a run: one metric, its direction and the threshold; it alone decides "better" and "met".

Built from the run's typed config (`Objective.of(config)`), so nobody re-reads the threshold with a default.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator

# metric name -> True when larger is better (the config validates `metric` against these names)
METRICS = {"accuracy": True, "val_accuracy": True, "f1": True, "loss": False}


def _known_metric(value: str) -> str:
    if value not in METRICS:
        raise ValueError(f"one of {', '.join(sorted(METRICS))}")
    return value


# A metric name as configs and trial specs hold it: validated against METRICS where it enters.
Metric = Annotated[str, AfterValidator(_known_metric)]


def _measured(value: float | None) -> bool:
    return value is not None and not math.isnan(value)


@dataclass(frozen=True)
class Objective:
    metric: str = "accuracy"
    threshold: float = 0.80
    higher_is_better: bool = True

    @classmethod
    def of(cls, config: Any) -> "Objective":
        """From a run's Config (metric, threshold)."""
        return cls(config.metric, config.threshold, METRICS.get(config.metric, True))

    @property
    def direction(self) -> str:
        """Optuna's word for it."""
        return "maximize" if self.higher_is_better else "minimize"

    def met(self, value: float | None) -> bool:
        if not _measured(value):
            return False
        return value >= self.threshold if self.higher_is_better else value <= self.threshold

    def better(self, a: float | None, b: float | None) -> bool:
        """Is `a` strictly better than `b`? (None / NaN is worst.)"""
        if not _measured(a):
            return False
        if not _measured(b):
            return True
        return a > b if self.higher_is_better else a < b

    def sign(self, met: bool) -> str:
        if met:
            return "≥" if self.higher_is_better else "≤"
        return "<" if self.higher_is_better else ">"

    def compare(self, value: float | None, digits: int = 4) -> str:
        """'accuracy 0.9120 < 0.95': a value against the threshold, as job descriptions and notices show it."""
        if not _measured(value):
            return f"{self.metric} — (threshold {self.threshold:g})"
        return f"{self.metric} {value:.{digits}f} {self.sign(self.met(value))} {self.threshold:g}"
