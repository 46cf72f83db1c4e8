"""The report's reading of a run: one row per trial (hyperparameters, outcome, timing, epoch curves).

Read-only over the run store; the report page, the index, the console tables and the email share it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from mlci.core.errors import MlciError
from mlci.core.objective import Objective
from mlci.core.states import TrialStatus
from mlci.core.store import Run, RunRecord, Trial


@dataclass
class TrialRow:
    number: int
    proposed_by: str
    change: str | None
    hparams: dict[str, Any]
    value: float | None
    epochs: int | None
    train_seconds: float | None
    wall_seconds: float | None
    status: str
    restarts: int
    reason: str | None
    started_at: str | None = None
    curves: dict[str, list[float]] = field(default_factory=dict)  # per-epoch history: {"loss": [...], ...}


def epoch_curves(trial: Trial, metrics: Any | None) -> dict[str, list[float]]:
    """The trial's per-epoch history: metrics.json's when it finished, else the epoch log it left."""
    if metrics is not None and metrics.history:
        return {k: [float(v) for v in values] for k, values in metrics.history.items()}
    log = trial.checkpoints / "epochs.jsonl"
    found: dict[str, list[float]] = {}
    try:
        lines = log.read_text(encoding="utf-8").splitlines() if log.is_file() else []
    except OSError:
        lines = []
    for line in lines:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            break  # a line torn by a kill: what follows is unreliable
        for key, value in row.items():
            if key != "epoch" and isinstance(value, (int, float)):
                found.setdefault(key, []).append(float(value))
    return found


def trial_rows(run: Run) -> list[TrialRow]:
    """One row per proposed trial; an unreadable hparams.json, trial.json or metrics.json shows as a failed
    row with the reason, never as a hidden trial or a success without a value."""
    from mlci.core.store import TrialState

    rows = []
    for trial in run.trials():
        if not trial.hparams_path.exists():
            continue  # claimed, not yet proposed
        problems = []
        try:
            hp = trial.hparams()
        except MlciError as err:
            hp = None
            problems.append(err.message)
        metrics = None
        if trial.has_metrics():
            try:
                metrics = trial.metrics()
            except MlciError as err:
                problems.append(err.message)
        try:
            state, status = trial.state(), trial.status()
        except MlciError as err:
            state, status = TrialState(trial=trial.number), TrialStatus.FAILED
            problems.append(err.message)
        if problems:
            status = TrialStatus.FAILED
        epochs = metrics.epochs_done if metrics else None
        if status == TrialStatus.PRUNED:
            from mlci.tuning.pruning import read_pruned

            pruned = read_pruned(trial)
            epochs = pruned.epoch if pruned else None
        rows.append(TrialRow(trial.number, hp.proposed_by if hp else "unreadable", hp.change if hp else None,
                             hp.hparams if hp else {}, metrics.value if metrics else None, epochs,
                             metrics.train_seconds if metrics else None, state.wall_seconds, status,
                             len(state.restarts), "; ".join(problems) or state.reason, state.started_at,
                             epoch_curves(trial, metrics)))
    return rows


def ranked(rows: list[TrialRow], objective: Objective) -> list[TrialRow]:
    """Measured trials best first (KerasTuner's results_summary order); ties keep the trial order."""
    measured = [r for r in rows if r.value is not None]
    return sorted(measured, key=lambda r: (-r.value if objective.higher_is_better else r.value, r.number))


def parse_time(text: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


def run_seconds(record: RunRecord) -> float | None:
    """From the run's start to its finish (to now while it runs)."""
    started, finished = parse_time(record.created_at), parse_time(record.finished_at)
    if started is None:
        return None
    return ((finished or datetime.now(timezone.utc)) - started).total_seconds()


def seconds_text(value: float | None, missing: str = "—") -> str:
    """12s, 3m 4s, 1h 2m 3s: a duration as a person reads it (the report and the email say it alike)."""
    if value is None:
        return missing
    value = int(round(value))
    hours, rest = divmod(value, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h {minutes}m {seconds}s" if hours else f"{minutes}m {seconds}s" if minutes else f"{seconds}s"


def warm_start_sources(rows: list[TrialRow]) -> list[tuple[str, int | None]]:
    """(run id, trial) of the earlier runs whose best this run started from (the Optuna warm start)."""
    found = []
    for row in rows:
        if "warm-start" not in row.proposed_by or not row.change or not row.change.startswith("best of "):
            continue
        source = row.change[len("best of "):].split(":", 1)[0]
        run_id, _, trial = source.partition("#")
        pair = (run_id, int(trial) if trial.isdigit() else None)
        if pair not in found:
            found.append(pair)
    return found
