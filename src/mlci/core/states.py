"""The states a run and a trial can be in, and why a run ended: enums, never status strings.

`RunStatus` and `TrialStatus` are what run.json and trial.json hold; `DoneReason` is why the run
oracle ended a run, and it alone says which notification announces it.
"""
from __future__ import annotations

from enum import StrEnum


class TrialStatus(StrEnum):
    PENDING = "pending"  # proposed (hparams.json written), not started
    RUNNING = "running"  # a process or container trains it
    SUCCEEDED = "succeeded"  # metrics.json written
    FAILED = "failed"  # ended without metrics (after the monitor's restarts)
    PRUNED = "pruned"  # stopped early by the study's pruner: an outcome, not a failure

    def is_finished(self) -> bool:
        return self in (TrialStatus.SUCCEEDED, TrialStatus.FAILED, TrialStatus.PRUNED)

    def is_open(self) -> bool:
        """Still to be trained or training: the oracle launches or follows it."""
        return not self.is_finished()


class RunStatus(StrEnum):
    CREATED = "created"
    RUNNING = "running"
    MET = "met"  # the best trial reaches the threshold
    EXHAUSTED = "exhausted"  # the budget (trials, minutes, patience, the strategy) is spent below it
    FAILED = "failed"  # the model cannot train (trial 0 failed) or mlci could not go on
    INTERRUPTED = "interrupted"  # Ctrl-C / SIGTERM: run the same command again to continue

    def is_finished(self) -> bool:
        return self in (RunStatus.MET, RunStatus.EXHAUSTED, RunStatus.FAILED)


class DoneReason(StrEnum):
    """Why the oracle says a run is done."""

    MET = "met"
    BUDGET = "budget"  # max_trials
    TIME = "time"  # max_minutes
    PATIENCE = "patience"
    STRATEGY = "strategy"  # the strategy has nothing left to propose
    TRIAL_FAILED = "trial-failed"
    ERROR = "error"  # an mlci error (runner unavailable, corrupt store, ...) stopped the run

    @property
    def status(self) -> RunStatus:
        if self is DoneReason.MET:
            return RunStatus.MET
        if self in (DoneReason.TRIAL_FAILED, DoneReason.ERROR):
            return RunStatus.FAILED
        return RunStatus.EXHAUSTED

    @property
    def event(self) -> str:
        """The notification that announces a run ended for this reason."""
        if self is DoneReason.MET:
            return "success"
        if self is DoneReason.TRIAL_FAILED:
            return "trial-failed"
        if self is DoneReason.ERROR:
            return "pipeline-error"
        return "budget-exhausted"
