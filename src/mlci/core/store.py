"""The run store: the only state shared between jobs, processes and containers.

Layout (DESIGN.md): $MLCI_HOME/runs/<run-id>/{run.json, study.db, trials/<n>/..., best/, outbox/}.
Every JSON is a schema-versioned pydantic record written atomically (temp file + rename).
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mlci.core.config import Config, DataConfig, Dataset
from mlci.core.errors import BusyError, MetricsError, UsageError
from mlci.core.objective import Metric
from mlci.core.states import DoneReason, RunStatus, TrialStatus

SCHEMA_VERSION = 1
T = TypeVar("T", bound="Record")


CRASH_FILE = "crash.json"  # trials/<n>/: the harness's uncaught exception (type, message), written as it dies
STOP_FILE = "stop"  # trials/<n>/: mlci asks the harness to end training after the epoch it is in (max_minutes)


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def default_home() -> Path:
    return Path(os.environ.get("MLCI_HOME") or ".mlci")


class Record(BaseModel):
    """A JSON file of the run store; `schema_version` lets a newer mlci read older runs."""

    model_config = ConfigDict(extra="allow")
    schema_version: int = SCHEMA_VERSION


class Kind(BaseModel):
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

    model_config = ConfigDict(extra="allow")
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
    """What a trial achieved (trials/<n>/metrics.json), written by the training harness."""

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


# ----------------------------------------------------------------------------- atomic JSON


def write_json(path: Path, data: dict[str, Any] | BaseModel) -> None:
    """Write JSON atomically: a reader sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.model_dump(mode="json", by_alias=True) if isinstance(data, BaseModel) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(payload, handle, indent=2, sort_keys=False)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def read_record(path: Path, model: type[T], *, what: str, fix: str, error: type = UsageError) -> T:
    """Read a record; a missing, corrupt or wrongly typed file is one clear line naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: {what} not found", hint=fix) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{path}: {what} cannot be read ({exc})", hint=fix) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{path}: {what} is not valid JSON (line {exc.lineno}: {exc.msg}; truncated?)", hint=fix) from None
    if not isinstance(data, dict):
        raise error(f"{path}: {what} must be a JSON object", hint=fix)
    version = data.get("schema_version", SCHEMA_VERSION)
    if isinstance(version, int) and version > SCHEMA_VERSION:
        raise error(f"{path}: {what} has schema_version {version}, newer than this mlci ({SCHEMA_VERSION})",
                    hint="upgrade mlci")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise error(f"{path}: {what} key '{key}' is invalid ({first['msg'].lower()}, got {first.get('input')!r})",
                    hint=fix) from None


@contextlib.contextmanager
def file_lock(path: Path, *, timeout: float | None, busy: Exception) -> Iterator[None]:
    """An exclusive fcntl lock on `path`; `busy` is raised after `timeout` seconds (None: wait forever)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if deadline is not None and time.monotonic() >= deadline:
                    raise busy from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# ----------------------------------------------------------------------------- ids


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

    def state(self) -> TrialState:
        if not self.state_path.exists():
            return TrialState(trial=self.number)
        return read_record(self.state_path, TrialState, what="trial.json",
                           fix="delete it to let mlci treat the trial as pending")

    def status(self) -> TrialStatus:
        """The trial's status, one rule for everyone: trial.json's, except that metrics written without a
        trial.json (or before it was updated) count as succeeded."""
        status = TrialStatus(self.state().status)
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
        for name in ("model.keras", "model.joblib"):
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
        (self.dir / "trials").mkdir(parents=True, exist_ok=True)
        number = (self.trial_numbers() or [-1])[-1] + 1
        while True:
            try:
                (self.dir / "trials" / str(number)).mkdir()
                return Trial(self, number)
            except FileExistsError:
                number += 1

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
        for name in ("metrics.json", "hparams.json", "model.keras", "model.joblib", "model.py"):
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
        run = Run(self, run_id)
        if not run.record_path.exists():
            known = ", ".join(r.id for r in self.runs()[-5:]) or "none"
            raise UsageError(f"run '{run_id}' not found in {self.runs_dir}",
                             hint=f"known runs: {known}; start one with `mlci run MODEL_FILE`")
        return run

    def runs(self) -> list[Run]:
        if not self.runs_dir.is_dir():
            return []
        found = [Run(self, p.name) for p in self.runs_dir.iterdir() if (p / "run.json").exists()]
        return sorted(found, key=lambda r: r.record_path.stat().st_mtime)

    def open_run(self, record: RunRecord) -> Run:
        """Create the run if new; an existing run (same id) is continued, keeping its history."""
        run = Run(self, record.run_id)
        if not run.record_path.exists():
            run.dir.mkdir(parents=True, exist_ok=True)
            run.write_record(record)
        return run
