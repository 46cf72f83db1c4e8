"""A run's history as strategies and the oracle's budget read it: every trial, what it tried, what it achieved.

Outside the strategies package, so that the oracle's budget (what `mlci status --json` reports) imports no
strategy.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlci.core.errors import MlciError
from mlci.core.store import Run


@dataclass
class PastTrial:
    number: int
    hparams: dict[str, Any]
    proposed_by: str
    parent: int | None
    value: float | None  # None: failed, pruned or not finished
    status: str


def past_trials(run: Run) -> list[PastTrial]:
    """Every trial of the run with what it tried and what it achieved."""
    found = []
    for trial in run.trials():
        if not trial.hparams_path.exists():
            continue
        try:
            record = trial.hparams()
        except MlciError:
            continue
        value = None
        if trial.has_metrics():
            try:
                value = trial.metrics().value
            except MlciError:
                value = None
        status = trial.status()
        found.append(PastTrial(trial.number, record.hparams, record.proposed_by, record.parent, value, status))
    return found
