"""MLflow tracking: each trial of a run becomes an MLflow run, nested under one parent run per mlci run.

Optional ([tracking] mlflow_uri in mlci.toml) and lazy: mlflow is imported only when a run tracks. The run
store stays the record; a server that cannot be reached never fails a trial: the sync is retried, said
once per run, and what was not logged is logged by the next sync (the next trial's end, or the run's).
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable

from pydantic import Field

from mlci.core.errors import BusyError, MlciError
from mlci.core.states import RunStatus, TrialStatus
from mlci.core.store import ARTIFACTS, Record, Run, Trial, file_lock, read_record, write_json

Notice = Callable[[str], None]
ATTEMPTS = 3
STATUS = {TrialStatus.SUCCEEDED: "FINISHED", TrialStatus.FAILED: "FAILED", TrialStatus.PRUNED: "KILLED"}


class TrackingRecord(Record):
    """runs/<id>/tracking.json: what of this run is in which MLflow server."""

    uri: str
    experiment_id: str | None = None
    parent_run_id: str | None = None
    trials: dict[str, str] = Field(default_factory=dict)  # trial number -> MLflow run id
    reported: bool = False  # report.html logged on the parent after the run ended
    warned: bool = False  # the "cannot reach" line was said


def _path(run: Run) -> Path:
    return run.dir / "tracking.json"


def _state(run: Run, uri: str) -> TrackingRecord:
    path = _path(run)
    if path.exists():
        try:
            state = read_record(path, TrackingRecord, what="tracking.json", fix="delete it to log the run again")
            if state.uri == uri:
                return state
        except MlciError:
            pass
    return TrackingRecord(uri=uri)  # a new server (or a corrupt file): the run is logged there from the start


def client(uri: str) -> Any:
    # MLflow retries a refused connection for minutes by default; mlci retries itself, briefly.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def sync(run: Run, notice: Notice | None = None, *, attempts: int = ATTEMPTS, delay: float = 1.0) -> bool:
    """Log every ended trial not yet logged (and, once the run ended, its report). True: all is logged.

    Never raises: tracking is a copy of the run store, and a trial's outcome does not depend on it."""
    record = run.record()
    uri = record.config.tracking.mlflow_uri
    if not uri:
        return True
    notice = notice or (lambda _text: None)
    busy = BusyError(f"run {run.id}: another process is logging it to MLflow")
    try:
        with file_lock(run.dir / ".tracking.lock", timeout=30, busy=busy):
            state = _state(run, uri)
            error = None
            for attempt in range(attempts):
                try:
                    _log(run, state)
                    return True
                except Exception as exc:  # noqa: BLE001  requests, MlflowException, OSError: all mean "not now"
                    error = exc
                    if attempt + 1 < attempts:
                        time.sleep(delay * (attempt + 1))
            if not state.warned:
                state.warned = True
                notice(f"warning: MLflow at {uri} could not be reached after {attempts} attempts "
                       f"({type(error).__name__}: {str(error).splitlines()[0][:160] if str(error) else ''}); "
                       "the trials are logged when it answers again (said once per run)")
            write_json(_path(run), state)
            return False
    except BusyError:
        return False  # the other process logs what this one would have


def _log(run: Run, state: TrackingRecord) -> None:
    mlflow = client(state.uri)
    record = run.record()
    tags = {"mlci.run_id": run.id, "mlci.model": record.model_name, "mlci.commit": record.commit or "working tree"}
    if record.commit:
        tags["mlflow.source.git.commit"] = record.commit
    if state.parent_run_id is None:
        name = record.config.tracking.experiment or f"mlci/{record.model_name}"
        experiment = mlflow.get_experiment_by_name(name)
        state.experiment_id = experiment.experiment_id if experiment else mlflow.create_experiment(name)
        parent = mlflow.create_run(state.experiment_id, run_name=run.id, tags=tags)
        state.parent_run_id = parent.info.run_id
        config = record.config
        _batch(mlflow, state.parent_run_id, params={"metric": config.metric, "threshold": config.threshold,
                                                     "strategy": config.strategy, "max_trials": config.max_trials})
        write_json(_path(run), state)
    for trial in run.trials():
        if str(trial.number) in state.trials or not trial.status().is_finished():
            continue
        state.trials[str(trial.number)] = _log_trial(mlflow, state, trial, tags)
        write_json(_path(run), state)
    record = run.record()
    if RunStatus(record.status).is_finished():
        metrics = {f"best_{record.config.metric}": record.best_value} if record.best_value is not None else {}
        _batch(mlflow, state.parent_run_id, metrics=metrics,
               tags={"mlci.status": str(record.status), "mlci.best_trial": str(record.best_trial)})
        for name in ("report.html", "report.png"):
            if (run.dir / name).is_file():
                mlflow.log_artifact(state.parent_run_id, str(run.dir / name))
        mlflow.set_terminated(state.parent_run_id, "FAILED" if record.status == RunStatus.FAILED else "FINISHED")
        state.reported = True
        write_json(_path(run), state)


def _log_trial(mlflow: Any, state: TrackingRecord, trial: Trial, tags: dict[str, str]) -> str:
    """One trial as a child run: its hyperparameters, per-epoch metrics, final metric, model and log."""
    from mlci.integrations.reports.rows import epoch_curves

    spec = trial.hparams()
    trial_state = trial.state()
    status = trial.status()
    child = mlflow.create_run(state.experiment_id, run_name=f"{trial.run.id}#{trial.number}", tags={
        **tags, "mlflow.parentRunId": state.parent_run_id, "mlci.trial": str(trial.number),
        "mlci.proposed_by": spec.proposed_by, "mlci.change": spec.change or "", "mlci.status": str(status),
        "mlci.reason": trial_state.reason or ""})
    run_id = child.info.run_id
    metrics = trial.metrics() if trial.has_metrics() else None
    final = {}
    if metrics is not None:
        final = {f"final_{metrics.metric}": metrics.value, "train_seconds": metrics.train_seconds}
    if trial_state.wall_seconds is not None:
        final["wall_seconds"] = trial_state.wall_seconds
    _batch(mlflow, run_id, params=spec.hparams, metrics=final, curves=epoch_curves(trial, metrics))
    for name in (*ARTIFACTS, "log.txt", "model.diff"):
        if (trial.dir / name).is_file():
            mlflow.log_artifact(run_id, str(trial.dir / name))
    mlflow.set_terminated(run_id, STATUS.get(status, "FINISHED"))
    return run_id


def _batch(mlflow: Any, run_id: str, *, params: dict[str, Any] | None = None, metrics: dict[str, float] | None = None,
           curves: dict[str, list[float]] | None = None, tags: dict[str, str] | None = None) -> None:
    from mlflow.entities import Metric, Param, RunTag

    now = int(time.time() * 1000)
    logged = [Metric(key, float(value), now, 0) for key, value in (metrics or {}).items()]
    for key, values in (curves or {}).items():
        logged += [Metric(key, float(value), now, step) for step, value in enumerate(values)]
    for start in range(0, max(len(logged), 1), 1000):  # MLflow takes at most 1000 metrics a batch
        mlflow.log_batch(run_id, metrics=logged[start:start + 1000],
                         params=[Param(k, str(v)[:500]) for k, v in (params or {}).items()] if start == 0 else [],
                         tags=[RunTag(k, v) for k, v in (tags or {}).items()] if start == 0 else [])
