"""Pruning inside the training harness: report each epoch's validation metric to the study, stop hopeless trials.

Optuna is imported only when hparams.json asks for pruning, so an image without it still trains;
a study that cannot be reached turns pruning off with one warning and never fails the trial.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

from mlci.core.errors import MlciError
from mlci.core.store import Record, Trial, now_iso, read_record, write_json
from mlci.tuning.study import make_pruner, open_storage
from pydantic import Field

PRUNED_FILE = "pruned.json"


class PrunedRecord(Record):
    """trials/<n>/pruned.json: the harness stopped this trial early; metrics.json is not written."""

    trial: int | None = None
    epoch: int  # epochs done when the trial was stopped
    value: float | None = None  # the validation metric at that epoch
    metric: str = "val_accuracy"
    intermediate: dict[str, float] = Field(default_factory=dict)  # epoch -> validation metric
    pruner: str = "median"
    at: str = Field(default_factory=now_iso)


class TrialPruned(Exception):
    """Raised from the epoch callback to stop training; the harness turns it into pruned.json."""

    def __init__(self, epoch: int, value: float | None):
        super().__init__(f"pruned at epoch {epoch}")
        self.epoch = epoch
        self.value = value


def read_pruned(trial: Trial) -> PrunedRecord | None:
    path = trial.dir / PRUNED_FILE
    if not path.exists():
        return None
    try:
        return read_record(path, PrunedRecord, what=PRUNED_FILE, fix="delete it and train the trial again")
    except MlciError:
        return None


class Reporter:
    """Per-epoch link from the harness to the trial's Optuna study (storage URL and trial id in hparams.json)."""

    def __init__(self, link: dict[str, Any], echo: Callable[[str], None]):
        self.link = link
        self.echo = echo
        self.key = link.get("report", "val_accuracy")
        self.pruner_name = (link.get("pruner") or {}).get("name", "median")
        self.intermediate: dict[str, float] = {}
        self._trial = None
        self._broken = False

    @classmethod
    def from_hparams(cls, extra: dict[str, Any], echo: Callable[[str], None]) -> "Reporter | None":
        link = (extra or {}).get("optuna")
        if not isinstance(link, dict) or not link.get("pruner") or link.get("trial_id") is None:
            return None
        return cls(link, echo)

    def _connect(self) -> Any:
        if self._trial is not None or self._broken:
            return self._trial
        url = str(self.link.get("storage", ""))
        try:
            if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).exists():
                raise FileNotFoundError(f"{url[len('sqlite:///'):]} is not visible from this process")
            import optuna

            study = optuna.load_study(study_name=self.link["study"], storage=open_storage(url),
                                      pruner=make_pruner(self.link["pruner"]))
            self._trial = optuna.trial.Trial(study, int(self.link["trial_id"]))
        except Exception as exc:  # no optuna, no database: train to the end without pruning
            self._broken = True
            self.echo(f"warning: pruning is off for this trial ({type(exc).__name__}: {str(exc)[:160]})")
        return self._trial

    def epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        """Called after epoch `epoch` (0-based); raises TrialPruned when the pruner says stop."""
        value = logs.get(self.key, logs.get("val_accuracy"))
        if value is None or not math.isfinite(float(value)):
            return
        step = epoch + 1
        self.intermediate[str(step)] = float(value)
        trial = self._connect()
        if trial is None:
            return
        try:
            trial.report(float(value), step)
            stop = trial.should_prune()
        except Exception as exc:  # the study closed the trial, or the database went away
            self._broken, self._trial = True, None
            self.echo(f"warning: pruning is off for this trial ({type(exc).__name__}: {str(exc)[:160]})")
            return
        if stop:
            raise TrialPruned(step, float(value))

    def write(self, trial_dir: Path, trial: int | None, pruned: TrialPruned) -> PrunedRecord:
        record = PrunedRecord(trial=trial, epoch=pruned.epoch, value=pruned.value, metric=self.key,
                              intermediate=self.intermediate, pruner=self.pruner_name)
        write_json(trial_dir / PRUNED_FILE, record)
        return record
