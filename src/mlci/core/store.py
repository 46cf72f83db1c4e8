"""The run store: the only state shared between jobs, processes and containers.

Layout (DESIGN.md): $MLCI_HOME/runs/<run-id>/{run.json, study.db, trials/<n>/..., best/, outbox/}.
Every JSON is a schema-versioned pydantic record written atomically (temp file + rename).
"""
from __future__ import annotations

import hashlib
import math
import os
import re
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mlci.core.config import Config, DataConfig, Dataset
from mlci.core._files import (SCHEMA_VERSION, file_lock, read_record, store_failure,  # noqa: F401  re-exported
                              write_json)
from mlci.core.errors import BusyError, MetricsError, UsageError
from mlci.core.objective import Metric
from mlci.core.states import DoneReason, RunStatus, TrialStatus



CRASH_FILE = "crash.json"  # trials/<n>/: the harness's uncaught exception (type, message), written as it dies
STOP_FILE = "stop"  # trials/<n>/: mlci asks the harness to end training after the epoch it is in (max_minutes)
ARTIFACTS = ("model.keras", "model.joblib", "model.pt")  # the trained model a trial leaves (Keras, scikit-learn, PyTorch)


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def default_home() -> Path:
    return Path(os.environ.get("MLCI_HOME") or ".mlci")


class Record(BaseModel):
    """A JSON file of the run store; `schema_version` lets a newer mlci read older runs."""

    model_config = ConfigDict(extra="allow", defer_build=True)  # validators built on first use: fast start-up
    schema_version: int = SCHEMA_VERSION


class Kind(BaseModel):
    model_config = ConfigDict(defer_build=True)
    framework: str  # sklearn | keras | torch | unsupported
    architecture: str  # cnn | ann | rnn | classical
    mode: Literal["module", "script"] = "module"  # module: defines build_model(hp)


class RunRecord(Record):
    run_id: str
    model_name: str
    model_file: str  # absolute path of the model file this run trains (a snapshot for fetched commits)
    source_dir: str  # folder mounted into containers (the model file's folder)
    content_hash: str
    commit: str | None = None
    kind: Kind | None = None
    image: str | None = None
    config: Config = Field(default_factory=Config)  # typed: the threshold's default lives in Config alone
    status: RunStatus = RunStatus.CREATED  # written by the run oracle only
    reason: DoneReason | None = None  # why the run ended (the oracle's verdict)
    best_trial: int | None = None
    best_value: float | None = None
    created_at: str = Field(default_factory=now_iso)
    updated_at: str = Field(default_factory=now_iso)
    finished_at: str | None = None
    message: str | None = None


class OptunaLink(BaseModel):
    """The Optuna strategy's link from a trial to its study trial (what the harness reports to for pruning)."""

    model_config = ConfigDict(extra="allow", defer_build=True)
    storage: str | None = None
    study: str | None = None
    trial: int | None = None  # the study's trial number
    trial_id: int | None = None
    direction: str | None = None
    report: str | None = None  # the epoch metric reported for pruning
    pruner: dict[str, Any] | None = None


class TrialSpec(Record):
    """Everything the training harness needs to train one trial: trials/<n>/hparams.json.

    The strategy writes the proposal (hparams, proposed_by, parent, change, optuna); the launch fills the
    run-level settings (metric, dataset, seed, data) from the run's Config with `with_settings`. A file
    written before those fields existed reads with the harness defaults.
    """

    model_config = ConfigDict(extra="forbid")
    trial: int
    hparams: dict[str, Any]
    proposed_by: str = "baseline"  # baseline | ladder:<step> | optuna | warm-start | ...
    parent: int | None = None  # the trial this proposal changes
    change: str | None = None  # one line a person reads: "units 32 -> 64"
    created_at: str = Field(default_factory=now_iso)
    metric: Metric = "accuracy"
    dataset: Dataset | None = None  # None: the module's load_data(), else mnist-sample
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    data: DataConfig = Field(default_factory=DataConfig)  # [data] of mlci.toml (script mode)
    optuna: OptunaLink | None = None  # the pruning link (Optuna strategy only)

    def with_settings(self, config: "Config") -> "TrialSpec":
        """This spec with the run-level settings of `config` (metric, dataset, seed, [data])."""
        return self.model_copy(update={
            "metric": config.metric, "dataset": config.dataset, "seed": config.seed,
            "data": config.data.model_copy(deep=True)})

    def optuna_link(self) -> dict[str, Any]:
        """The pruning link as a plain dict ({} when the trial has none)."""
        return self.optuna.model_dump(mode="json", exclude_none=True) if self.optuna is not None else {}


HparamsRecord = TrialSpec  # the name the rest of mlci used before the spec held the run settings


def write_trial_spec(trial: "Trial", config: "Config") -> TrialSpec:
    """Fill the run's settings into the trial's hparams.json (at launch); the harness reads nothing else."""
    spec = trial.hparams().with_settings(config)
    trial.write_hparams(spec)
    return spec


class Restart(BaseModel):
    model_config = ConfigDict(defer_build=True)
    at: str
    reason: str
    exit_code: int | None = None
    resumed_from_epoch: int | None = None
    failure: str | None = None  # "ValueError: ...": the exception that ended the attempt (seen twice: not restarted)


class TrialState(Record):
    """What the runner and monitor know of a trial (trials/<n>/trial.json)."""

    trial: int
    status: TrialStatus = TrialStatus.PENDING
    runner: str | None = None
    pid: int | None = None
    container_id: str | None = None
    image: str | None = None
    user: str | None = None
    exit_code: int | None = None
    reason: str | None = None
    started_at: str | None = None
    launched_at: float | None = None  # unix time of the latest (re)launch: heartbeat staleness counts from it
    ended_at: str | None = None
    wall_seconds: float | None = None
    restarts: list[Restart] = Field(default_factory=list)


class MetricsRecord(Record):
    """What a trial achieved (trials/<n>/metrics.json), written by the training harness.

    The value is checked where it enters: finite, and a score (accuracy, f1) in [0, 1]; NaN stays
    allowed (a diverged training), and never meets a threshold.
    """

    trial: int | None = None
    metric: str = "accuracy"
    value: float
    accuracy: float | None = None
    loss: float | None = None
    history: dict[str, list[float]] = Field(default_factory=dict)
    epochs_done: int = 0
    resumed_from_epoch: int | None = None
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    import_seconds: float | None = None  # importing the model file (and so its framework)
    data_seconds: float | None = None  # loading the data set
    harness_seconds: float | None = None  # everything inside the harness, from reading hparams to metrics.json
    n_train: int = 0
    n_test: int = 0
    framework: str | None = None
    source: str = "harness"  # where the metric came from (harness | metrics.json | keras-evaluate | file:<name> | stdout)
    versions: dict[str, str] = Field(default_factory=dict)
    finished_at: str = Field(default_factory=now_iso)

    @model_validator(mode="after")
    def _value_in_range(self) -> "MetricsRecord":
        from mlci.core.objective import METRICS

        # NaN is a diverged training (never meets a threshold); +inf a diverged loss; a loss may be negative
        # (Keras' cosine similarity). A score (accuracy, f1) outside [0, 1] is no score: 1e308 never "met".
        for name, number, score in (("value", self.value, METRICS.get(self.metric, False)),
                                    ("accuracy", self.accuracy, True)):
            if number is None or math.isnan(number):
                continue
            if score and not 0 <= number <= 1:
                raise ValueError(f"{name} {number!r} is out of range for {self.metric if name == 'value' else name}: "
                                 "a score lies in [0, 1]")
            if not score and number == -math.inf:  # a loss may be negative (cosine), never -inf: it would beat all
                raise ValueError(f"{name} is -inf: a {self.metric} must be a number")
        return self


# ----------------------------------------------------------------------------- ids

RUN_ID = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.-]{0,199}")  # what make_run_id makes (a model `_m.py`: `_m-<hash>`)


def check_run_id(run_id: str) -> str:
    """A run id is a name inside runs/, never a path: `--run ../../other/runs/ID` is refused."""
    # no "/" is allowed, so "." and ".." are the only names that leave runs/
    if not isinstance(run_id, str) or not RUN_ID.fullmatch(run_id) or run_id in (".", ".."):
        shown = repr(run_id) if len(repr(run_id)) <= 80 else repr(run_id)[:77] + "..."
        raise UsageError(f"{shown} is not a run id",
                         hint="pass an id as `mlci runs` lists it (letters, digits, '-', '_', '.'; no path)")
    return run_id


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def make_run_id(model_file: Path, content_hash: str, commit: str | None = None) -> str:
    """Stable for a (model file, content or commit): running again continues the same run."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", model_file.stem).strip("-") or "model"
    name = model_file.name
    parts = model_file.parts
    if commit and commit in parts[:-1]:
        # A snapshot of a commit (src/<commit>/models/a/model.py): its path in the commit names the model,
        # so models/a/model.py and models/b/model.py of one commit are two runs (at the top: just the name).
        name = "/".join(parts[len(parts) - parts[::-1].index(commit):])
    basis = f"{name}\0{commit or content_hash}"
    return f"{stem}-{hashlib.sha256(basis.encode()).hexdigest()[:10]}"


# ----------------------------------------------------------------------------- store objects


class Trial:
    """One trial's folder: trials/<n>/."""

    def __init__(self, run: "Run", number: int):
        self.run = run
        self.number = number
        self.dir = run.dir / "trials" / str(number)

    hparams_path = property(lambda self: self.dir / "hparams.json")
    metrics_path = property(lambda self: self.dir / "metrics.json")
    state_path = property(lambda self: self.dir / "trial.json")
    log_path = property(lambda self: self.dir / "log.txt")
    checkpoints = property(lambda self: self.dir / "checkpoints")
    heartbeat_path = property(lambda self: self.dir / "heartbeat")

    @property
    def work_dir(self) -> Path:
        """The trial's work area (its cwd: a private copy of the model's folder), see core/workarea.py."""
        from mlci.core.workarea import work_dir

        return work_dir(self.dir)

    def __repr__(self) -> str:
        return f"Trial({self.run.id}#{self.number})"

    def hparams(self) -> HparamsRecord:
        return read_record(self.hparams_path, HparamsRecord, what="hparams.json",
                           fix="rewrite it with `mlci tweak`, or fix the value by hand")

    def write_hparams(self, record: HparamsRecord) -> None:
        write_json(self.hparams_path, record)

    def metrics(self) -> MetricsRecord:
        return read_record(self.metrics_path, MetricsRecord, what="metrics.json", error=MetricsError,
                           fix=f"train the trial again: delete it and trial.json next to it, then `mlci launch "
                               f"--run {self.run.id}` and `mlci wait --run {self.run.id} --trial {self.number}`")

    def has_metrics(self) -> bool:
        return self.metrics_path.is_file()

    def metrics_problem(self) -> str | None:
        """Why metrics.json, which exists, cannot count (corrupt, a value out of range); None if it can."""
        if not self.has_metrics():
            return None
        try:
            self.metrics()
        except MetricsError as err:
            return err.message
        return None

    def state(self) -> TrialState:
        if not self.state_path.exists():
            return TrialState(trial=self.number)
        return read_record(self.state_path, TrialState, what="trial.json",
                           fix="delete it to let mlci treat the trial as pending")

    def status(self) -> TrialStatus:
        """The trial's status, one rule for everyone: trial.json's, except that metrics written without a
        trial.json (or before it was updated) count as succeeded."""
        status = TrialStatus(self.state().status)
        if status in (TrialStatus.PENDING, TrialStatus.SUCCEEDED) and self.metrics_problem():
            return TrialStatus.FAILED  # a corrupt metrics.json is no success: shown failed, with its reason
        if status == TrialStatus.PENDING and self.has_metrics():
            return TrialStatus.SUCCEEDED
        return status

    def write_state(self, state: TrialState) -> None:
        write_json(self.state_path, state)

    def update_state(self, **changes: Any) -> TrialState:
        state = TrialState.model_validate({**self.state().model_dump(), **changes})  # validated: "failed" -> enum
        self.write_state(state)
        return state

    def model_artifact(self) -> Path | None:
        for name in ARTIFACTS:
            if (self.dir / name).exists():
                return self.dir / name
        return None


class Run:
    """One run = one pushed commit (or content) of one model: runs/<run-id>/."""

    def __init__(self, store: "RunStore", run_id: str):
        self.store = store
        self.id = run_id
        self.dir = store.runs_dir / run_id

    record_path = property(lambda self: self.dir / "run.json")
    outbox = property(lambda self: self.dir / "outbox")
    best_dir = property(lambda self: self.dir / "best")
    study_path = property(lambda self: self.dir / "study.db")

    def __repr__(self) -> str:
        return f"Run({self.id})"

    def record(self) -> RunRecord:
        return read_record(self.record_path, RunRecord, what="run.json",
                           fix=f"start the run again with `mlci run` (the store is {self.store.home})")

    def write_record(self, record: RunRecord) -> None:
        record.updated_at = now_iso()
        write_json(self.record_path, record)

    def update(self, **changes: Any) -> RunRecord:
        record = RunRecord.model_validate({**self.record().model_dump(by_alias=True), **changes})
        self.write_record(record)
        return record

    def trial(self, number: int) -> Trial:
        return Trial(self, number)

    def trial_numbers(self) -> list[int]:
        folder = self.dir / "trials"
        if not folder.is_dir():
            return []
        return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit() and p.is_dir())

    def trials(self) -> list[Trial]:
        return [Trial(self, n) for n in self.trial_numbers()]

    def new_trial(self) -> Trial:
        """The next trial number, claimed atomically (mkdir fails if another process took it)."""
        try:
            (self.dir / "trials").mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise store_failure(self.dir / "trials", exc, "be created") from None
        number = (self.trial_numbers() or [-1])[-1] + 1
        while True:
            try:
                (self.dir / "trials" / str(number)).mkdir()
                return Trial(self, number)
            except FileExistsError:
                number += 1
            except OSError as exc:
                raise store_failure(self.dir / "trials" / str(number), exc, "be created") from None

    def lock(self, *, wait: bool = False, timeout: float = 0.0):
        """Exclusive lock on the run: two processes never drive one run at once."""
        busy = BusyError(f"run {self.id} is in use by another mlci process",
                         hint="wait for the other mlci process to finish, then run the command again")
        return file_lock(self.dir / ".lock", timeout=None if wait else timeout, busy=busy)

    def set_best(self, trial: Trial) -> None:
        """Copy the best trial's artifact and metrics into best/ (atomically replaced)."""
        staging = self.dir / ".best.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for name in ("metrics.json", "hparams.json", *ARTIFACTS, "model.py"):
            if (trial.dir / name).exists():
                shutil.copy2(trial.dir / name, staging / name)
        write_json(staging / "best.json", {"schema_version": SCHEMA_VERSION, "trial": trial.number})
        old = self.dir / ".best.old"
        shutil.rmtree(old, ignore_errors=True)
        if self.best_dir.exists():
            os.replace(self.best_dir, old)
        os.replace(staging, self.best_dir)
        shutil.rmtree(old, ignore_errors=True)


class RunStore:
    def __init__(self, home: Path | str | None = None):
        self.home = Path(home) if home else default_home()
        self.runs_dir = self.home / "runs"

    def run(self, run_id: str) -> Run:
        run = Run(self, check_run_id(run_id))
        for folder in (self.runs_dir, run.dir):  # a file where a folder belongs is named, not "not found"
            if folder.exists() and not folder.is_dir():
                raise store_failure(folder, NotADirectoryError(20, "a file, not a folder"), "hold the run")
        if not run.record_path.exists():
            known = ", ".join(r.id for r in self.runs()[-5:]) or "none"
            raise UsageError(f"run '{run_id}' not found in {self.runs_dir}",
                             hint=f"known runs: {known}; start one with `mlci run MODEL_FILE`")
        return run

    def runs(self) -> list[Run]:
        if not self.runs_dir.is_dir():
            return []
        try:
            found = [Run(self, p.name) for p in self.runs_dir.iterdir()
                     if RUN_ID.fullmatch(p.name) and (p / "run.json").is_file()]
            return sorted(found, key=lambda r: r.record_path.stat().st_mtime)
        except OSError as exc:
            raise store_failure(self.runs_dir, exc, "be listed") from None

    def open_run(self, record: RunRecord) -> Run:
        """Create the run if new; an existing run (same id) is continued, keeping its history."""
        run = Run(self, check_run_id(record.run_id))
        if not run.record_path.exists():
            try:
                run.dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise store_failure(run.dir, exc, "be created") from None
            run.write_record(record)
        return run
