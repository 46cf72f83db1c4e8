"""The runner interface: start a trial's training somewhere, report its state, stop it.

LocalRunner (a subprocess) and DockerRunner (a container) implement it, so the pipeline and
the monitor never care where a trial trains.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from mlci.core.config import ResourcesConfig

# "stopped": mlci itself stopped it for a limit (no progress, trial_minutes, max_minutes): never restarted
State = Literal["running", "exited", "killed", "oom", "missing", "stopped"]


@dataclass
class LaunchSpec:
    """Everything a runner needs to train one trial."""

    run_id: str
    trial: int
    model_name: str
    model_file: Path  # on the host
    source_dir: Path  # folder holding the model file: only read, to make the trial's work area
    trial_dir: Path  # writable: hparams.json in, metrics.json / model / checkpoints out; work/ its cwd
    framework: str
    image: str | None = None
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    env: dict[str, str] = field(default_factory=dict)

    def prepare_work_area(self) -> Path:
        """Copy the model's folder into trials/<n>/work (afresh at each launch); the model file's path there."""
        from mlci.core.workarea import model_in_work, work_dir

        work_dir(self.trial_dir).parent.mkdir(parents=True, exist_ok=True)
        return model_in_work(self.trial_dir, self.model_file, self.source_dir)

    def harness_args(self, trial_dir: str | Path, model_file: str | Path) -> list[str]:
        """`mlci train` arguments, with paths as the training process sees them (the rest is in hparams.json)."""
        return ["train", "--trial-dir", str(trial_dir), "--model", str(model_file)]


@dataclass
class Status:
    """A trial's process or container as the runner sees it now."""

    state: State
    handle: str
    exit_code: int | None = None
    signal: int | None = None
    reason: str | None = None  # one line: "exit code 1", "killed by SIGKILL", "OOM-killed"

    @property
    def finished(self) -> bool:
        return self.state != "running"

    @property
    def succeeded(self) -> bool:
        return self.state == "exited" and self.exit_code == 0


class Runner(abc.ABC):
    name: str = "runner"
    # True: the trial cannot reach the study (a container without network or credentials); its follower relays
    # its epochs to the study and answers the pruner's decision (mlci.tuning.pruning.PruningRelay)
    relays_pruning: bool = False

    @abc.abstractmethod
    def start(self, spec: LaunchSpec) -> str:
        """Start training; return a handle (pid or container id) recorded in trial.json."""

    @abc.abstractmethod
    def status(self, handle: str) -> Status:
        """The state now; never blocks."""

    @abc.abstractmethod
    def wait(self, handle: str, timeout: float | None = None) -> Status:
        """Block until finished (or timeout: then the state is 'running')."""

    @abc.abstractmethod
    def kill(self, handle: str) -> None:
        """Stop it now (SIGKILL)."""
