"""Pruning: each epoch's validation metric goes to the study, and the study's pruner stops hopeless trials.

Two ways, one decision (the study's pruner):
- direct: the harness reports to the study itself (a local trial process reaches the study and its credentials);
- relayed: a trial in a container has no network (`[resources] network = "none"`) and no database credentials,
  so the harness only writes its epochs (checkpoints/epochs.jsonl, as always) and waits briefly for the
  follower's answer in trials/<n>/prune-answer.json; the follower (`PruningRelay`, in the orchestrating
  process, which holds the credentials) reports each epoch to the study and writes the pruner's answer.

Optuna is imported only when hparams.json asks for pruning, so an image without it still trains;
a study that cannot be reached turns pruning off with one warning and never fails the trial.
"""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any, Callable

from mlci.core.errors import MlciError
from mlci.core.store import Record, Trial, now_iso, read_record, write_json
from mlci.tuning.study import make_pruner, open_storage
from pydantic import Field

PRUNED_FILE = "pruned.json"
ANSWER_FILE = "prune-answer.json"  # trials/<n>/: the follower's answer to the latest epoch {"step", "prune", "off"}
RELAY_ENV = "MLCI_PRUNING"  # = "relay" in a trial's environment: report through the follower, not to the study
RELAY_WAIT = 10.0  # seconds the harness waits for the follower's answer to an epoch before training on


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

    def __init__(self, link: dict[str, Any], echo: Callable[[str], None], trial_dir: Path | None = None):
        self.link = link
        self.echo = echo
        self.key = link.get("report", "val_accuracy")
        self.pruner_name = (link.get("pruner") or {}).get("name", "median")
        self.intermediate: dict[str, float] = {}
        self._trial = None
        self._broken = False
        self.relay = os.environ.get(RELAY_ENV) == "relay"
        self.trial_dir = Path(trial_dir or os.environ.get("MLCI_TRIAL_DIR", "."))
        self._waiting = True  # the follower answers: wait for its answer to each epoch
        self._last_answer = -1

    @classmethod
    def from_hparams(cls, extra: dict[str, Any], echo: Callable[[str], None],
                     trial_dir: Path | None = None) -> "Reporter | None":
        link = (extra or {}).get("optuna")
        if not isinstance(link, dict) or not link.get("pruner") or link.get("trial_id") is None:
            return None
        return cls(link, echo, trial_dir)

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
        if self.relay:
            answer = self._answer(step)
            if answer is not None and answer.get("prune"):
                raise TrialPruned(step, float(value))
            return
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

    def _answer(self, step: int) -> dict[str, Any] | None:
        """The follower's latest answer (it has read this epoch from epochs.jsonl, which is written first).

        No answer file: nobody relays this attempt (launching a trial removes the last one) and training goes on.
        An answer to an earlier epoch: wait up to RELAY_WAIT for this one; after one wait in vain, look without
        waiting until the follower answers again (it may have stopped: the trial never hangs on it).
        """
        deadline = time.monotonic() + RELAY_WAIT
        while True:
            answer = read_answer(self.trial_dir)
            if answer is None or self._broken:
                return None
            seen = int(answer.get("step", 0))
            if answer.get("off"):
                self._broken = True
                self.echo(f"warning: pruning is off for this trial ({answer.get('why', 'the follower cannot reach the study')})")
                return None
            if seen > self._last_answer:
                self._waiting, self._last_answer = True, seen
            if seen >= step or answer.get("prune") or not self._waiting:
                return answer
            if time.monotonic() >= deadline:
                self._waiting = False
                self.echo(f"mlci: no pruning answer for epoch {step} within {RELAY_WAIT:g}s; training on")
                return answer
            time.sleep(0.02)

    def write(self, trial_dir: Path, trial: int | None, pruned: TrialPruned) -> PrunedRecord:
        record = PrunedRecord(trial=trial, epoch=pruned.epoch, value=pruned.value, metric=self.key,
                              intermediate=self.intermediate, pruner=self.pruner_name)
        write_json(trial_dir / PRUNED_FILE, record)
        return record


def read_answer(trial_dir: Path) -> dict[str, Any] | None:
    try:
        answer = json.loads((Path(trial_dir) / ANSWER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return answer if isinstance(answer, dict) else None


class PruningRelay:
    """The follower's side of relayed pruning: reports a container's epochs to the study and writes the pruner's
    answer. Runs in the process that follows the trial (`mlci run`, `mlci worker`, `mlci wait`), which holds the
    study's credentials; the container needs neither a network nor the database password."""

    def __init__(self, trial: Trial, link: dict[str, Any], echo: Callable[[str], None]):
        self.trial = trial
        self.link = link
        self.echo = echo
        self.key = link.get("report", "val_accuracy")
        self.trial_id = int(link["trial_id"])
        self.done = False
        self._study = None
        self._seen: tuple[int, float] | None = None
        self._size = -1

    @classmethod
    def attach(cls, trial: Trial, echo: Callable[[str], None] = lambda _: None) -> "PruningRelay | None":
        """A relay for a trial whose study prunes (None otherwise); it announces itself with an answer to epoch 0,
        so the harness knows to wait for its answers."""
        try:
            link = trial.hparams().optuna_link()
        except MlciError:
            return None
        if not link.get("pruner") or link.get("trial_id") is None or (link.get("pruner") or {}).get("name") == "none":
            return None
        relay = cls(trial, link, echo)
        if read_answer(trial.dir) is None:
            relay._write(0, False)
        return relay

    def _write(self, step: int, prune: bool, off: str | None = None) -> None:
        answer: dict[str, Any] = {"step": step, "prune": prune}
        if off:
            answer.update(off=True, why=off)
        # 0644: a container runs as another user than a root orchestrator, and reads it after its start
        write_json(self.trial.dir / ANSWER_FILE, answer, mode=0o644)

    def _epochs(self) -> dict[int, float]:
        values: dict[int, float] = {}
        try:
            lines = (self.trial.checkpoints / "epochs.jsonl").read_text(encoding="utf-8").splitlines()
        except OSError:
            return values
        for line in lines:
            try:
                row = json.loads(line)
                value = float(row.get(self.key, row.get("val_accuracy")))
                if math.isfinite(value):
                    values[int(row["epoch"]) + 1] = value
            except (ValueError, TypeError, KeyError):
                break  # a line being written, or torn by a kill
        return values

    def _open(self) -> Any:
        if self._study is None:
            import optuna

            self._study = optuna.load_study(study_name=self.link["study"], storage=open_storage(str(self.link["storage"])),
                                            pruner=make_pruner(self.link["pruner"]))
        return self._study

    def poll(self) -> None:
        """Relay the epochs written since the last poll, and answer the latest one."""
        if self.done:
            return
        try:
            size = (self.trial.checkpoints / "epochs.jsonl").stat().st_size
        except OSError:
            return
        if size == self._size:
            return
        self._size = size
        values = self._epochs()
        if not values:
            return
        step = max(values)
        if self._seen == (step, values[step]):
            return
        self._seen = (step, values[step])
        try:
            study = self._open()
            storage = study._storage
            frozen = storage.get_trial(self.trial_id)
            if frozen.state.is_finished():  # told already (another follower, a rerun): nothing to decide
                self.done = True
                self._write(step, False)
                return
            for at, value in sorted(values.items()):
                if frozen.intermediate_values.get(at) != value:
                    storage.set_trial_intermediate_value(self.trial_id, at, value)
            prune = bool(study.pruner.prune(study, storage.get_trial(self.trial_id)))
        except Exception as exc:  # noqa: BLE001  no database, no optuna: the trial trains to its end
            self.done = True
            why = f"{type(exc).__name__}: {str(exc).strip()[:160]}"
            self._write(step, False, off=why)
            self.echo(f"trial {self.trial.number}: pruning is off ({why})")
            return
        self._write(step, prune)
