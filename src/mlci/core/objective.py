"""Job 4's question: did the trial reach the threshold? (`mlci check`, exit 0 met, 3 below).

One function decides "better" and "met" for every metric, so check, tweak and the report agree.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from mlci.core.config import METRICS
from mlci.core.errors import MetricsError
from mlci.core.store import Run, Trial


def higher_is_better(metric: str) -> bool:
    return METRICS.get(metric, True)


def meets(value: float | None, threshold: float, metric: str) -> bool:
    if value is None or math.isnan(value):
        return False
    return value >= threshold if higher_is_better(metric) else value <= threshold


def better(a: float | None, b: float | None, metric: str) -> bool:
    """Is `a` strictly better than `b`? (None / NaN is worst.)"""
    if a is None or math.isnan(a):
        return False
    if b is None or math.isnan(b):
        return True
    return a > b if higher_is_better(metric) else a < b


@dataclass
class CheckResult:
    run_id: str
    trial: int
    metric: str
    value: float
    threshold: float
    met: bool

    def line(self) -> str:
        sign = ("≥" if higher_is_better(self.metric) else "≤") if self.met else ("<" if higher_is_better(self.metric) else ">")
        verdict = "met" if self.met else "below the threshold"
        return f"trial {self.trial}: {self.metric} {self.value:.4f} {sign} {self.threshold} ({verdict})"


def latest_measured(run: Run) -> Trial:
    for trial in reversed(run.trials()):
        if trial.has_metrics():
            return trial
    raise MetricsError(f"run {run.id} has no trial with metrics yet", hint="train one first (`mlci launch`, `mlci wait`)")


def check(run: Run, trial_number: int | None = None) -> CheckResult:
    record = run.record()
    metric = record.config.get("metric", "accuracy")
    threshold = float(record.config.get("threshold", 0.8))
    trial = run.trial(trial_number) if trial_number is not None else latest_measured(run)
    value = trial.metrics().value
    return CheckResult(run.id, trial.number, metric, value, threshold, meets(value, threshold, metric))


def best_trial(run: Run) -> tuple[Trial | None, float | None]:
    """The best measured trial of the run (ties: the earliest)."""
    metric = run.record().config.get("metric", "accuracy")
    best, best_value = None, None
    for trial in run.trials():
        if not trial.has_metrics():
            continue
        try:
            value = trial.metrics().value
        except MetricsError:
            continue
        if better(value, best_value, metric):
            best, best_value = trial, value
    return best, best_value
