"""The run oracle: the one place that decides what a run does next, and the only writer of its verdict.

Every driver (`mlci run`, the Jenkins jobs and Jenkinsfile, the monitor) asks it (`ask`/`next`) and tells it
(`tell`) what happened; it alone writes run.json's status, reason, best trial and finish time, in the spirit
of KerasTuner's Oracle and Optuna's ask-and-tell.
"""
from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Collection, Iterator

from mlci.core.config import Config
from mlci.core.errors import EXIT_BELOW_THRESHOLD, EXIT_OK, EXIT_TRIAL_FAILED, MetricsError, MlciError
from mlci.core.objective import Objective
from mlci.core.states import DoneReason, RunStatus, TrialStatus
from mlci.core.store import HparamsRecord, Run, RunRecord, Trial, now_iso


class Action(StrEnum):
    LAUNCH = "launch"  # train `trial` (trial 0 is the baseline: the user's own hyperparameters)
    PROPOSE = "propose"  # ask the strategy for the next trial (`mlci tweak`)
    DONE = "done"  # the run has ended for `reason`


def exit_code_for(status: RunStatus) -> int:
    """The exit code a command that ends with this run status returns (Jenkins reads it)."""
    if status == RunStatus.MET:
        return EXIT_OK
    if status == RunStatus.FAILED:
        return EXIT_TRIAL_FAILED
    return EXIT_BELOW_THRESHOLD


@dataclass(frozen=True)
class Step:
    """The oracle's answer to "what now?"."""

    action: Action
    trial: Trial | None = None
    reason: DoneReason | None = None
    message: str = ""

    @property
    def exit_code(self) -> int:
        """For DONE: 0 met, 3 budget spent, 5 failed."""
        return exit_code_for(self.reason.status) if self.reason else EXIT_OK


@dataclass(frozen=True)
class Outcome:
    """The run's verdict as it stands: what `mlci status`, notify, the report and Jenkins read."""

    run_id: str
    status: RunStatus
    reason: DoneReason | None
    message: str | None
    objective: Objective
    best_trial: int | None
    best_value: float | None
    trials: int
    trials_done: int
    finished_at: str | None
    next: Step

    @property
    def finished(self) -> bool:
        return self.status.is_finished()

    @property
    def event(self) -> str | None:
        """The notification that announces this outcome (None while the run goes on)."""
        return self.reason.event if self.finished and self.reason else None

    @property
    def exit_code(self) -> int:
        if self.status == RunStatus.MET:
            return EXIT_OK
        if self.status == RunStatus.FAILED:
            return EXIT_TRIAL_FAILED
        return EXIT_BELOW_THRESHOLD


@dataclass(frozen=True)
class CheckResult:
    """Job 4's question: did this trial reach the threshold?"""

    run_id: str
    trial: int
    value: float | None  # None: the trial ended without a metric (failed, or pruned by the study)
    objective: Objective
    status: TrialStatus = TrialStatus.SUCCEEDED

    @property
    def met(self) -> bool:
        return self.objective.met(self.value)

    def line(self) -> str:
        if self.value is None:
            return f"trial {self.trial}: {self.status}, no {self.objective.metric} (below the threshold)"
        verdict = "met" if self.met else "below the threshold"
        return f"trial {self.trial}: {self.objective.compare(self.value)} ({verdict})"


# Parallel trials end in threads of one process: run.json is read, changed and written under this lock;
# across processes and hosts the run's coordination backend (a file lock, or PostgreSQL) is held as well.
_WRITE_LOCK = threading.RLock()
_HELD = threading.local()


class RunOracle:
    """Asks and tells for one run. Stateless between calls: everything it knows is read from the run store,
    so each Jenkins job can build one in a fresh process and reach the same decision as `mlci run`."""

    def __init__(self, run: Run, config: Config | None = None, coordination=None):
        self.run = run
        self.config = config or run.record().config
        self.objective = Objective.of(self.config)
        self._coordination = coordination

    @property
    def coordination(self):
        """The run's coordination backend: PostgreSQL when `storage` is a server, the run folder otherwise."""
        if self._coordination is None:
            from mlci.orchestration.coordination import coordination_for

            self._coordination = coordination_for(self.run, self.config.storage)
        return self._coordination

    @contextlib.contextmanager
    def guard(self) -> Iterator[None]:
        """One decider at a time for this run: threads of this process, other processes, other hosts."""
        with _WRITE_LOCK:
            if getattr(_HELD, "depth", 0):
                _HELD.depth += 1
                try:
                    yield
                finally:
                    _HELD.depth -= 1
                return
            with self.coordination.guard():
                _HELD.depth = 1
                try:
                    yield
                finally:
                    _HELD.depth = 0

    # ------------------------------------------------------------------ reading the store (one rule each)

    @staticmethod
    def trial_status(trial: Trial) -> TrialStatus:
        return trial.status()

    def open_trials(self, busy: Collection[int] = ()) -> list[Trial]:
        """Proposed trials with no outcome yet (pending, or left running by a stopped process)."""
        return [trial for trial in self.run.trials()
                if trial.number not in busy and trial.hparams_path.exists() and not trial.has_metrics()
                and self.trial_status(trial).is_open()]

    def measured(self) -> list[tuple[Trial, float]]:
        found = []
        for trial in self.run.trials():
            if trial.has_metrics():
                try:
                    found.append((trial, trial.metrics().value))
                except MetricsError:
                    continue
        return found

    def best(self) -> tuple[Trial | None, float | None]:
        """The best measured trial (ties: the earliest)."""
        best, best_value = None, None
        for trial, value in self.measured():
            if self.objective.better(value, best_value):
                best, best_value = trial, value
        return best, best_value

    def latest_measured(self) -> Trial:
        found = [trial for trial in self.run.trials() if trial.has_metrics()]  # a corrupt one is reported by check
        if not found:
            raise MetricsError(f"run {self.run.id} has no trial with metrics yet",
                               hint=f"train one first: `mlci launch --run {self.run.id}`, then `mlci wait --run {self.run.id}`")
        return found[-1]

    def check(self, trial_number: int | None = None) -> CheckResult:
        """Job 4's question for a trial (default: the latest measured); a failed or pruned one is below."""
        trial = self.run.trial(trial_number) if trial_number is not None else self.latest_measured()
        status = trial.status()
        if status in (TrialStatus.FAILED, TrialStatus.PRUNED) and not trial.has_metrics():
            return CheckResult(self.run.id, trial.number, None, self.objective, status)
        return CheckResult(self.run.id, trial.number, trial.metrics().value, self.objective, status)

    def budget(self) -> tuple[DoneReason | None, str]:
        """Is the budget spent? (None, "") while another trial may be proposed, else why not."""
        from mlci.tuning.history import past_trials

        history = past_trials(self.run)
        # A proposal whose hparams.json is unreadable still spent a trial of the budget.
        proposed = sum(1 for trial in self.run.trials() if trial.hparams_path.exists())
        if max(len(history), proposed) >= self.config.max_trials:
            return DoneReason.BUDGET, f"max_trials ({self.config.max_trials}) reached"
        if self.config.max_minutes is not None:
            started = datetime.fromisoformat(self.run.record().created_at).timestamp()
            if (time.time() - started) / 60 >= self.config.max_minutes:
                return DoneReason.TIME, f"max_minutes ({self.config.max_minutes:g}) reached"
        if self.config.patience is not None and history:
            best_at, best_value = 0, None
            for index, trial in enumerate(history):
                if self.objective.better(trial.value, best_value):
                    best_at, best_value = index, trial.value
            if len(history) - 1 - best_at >= self.config.patience:
                return DoneReason.PATIENCE, f"no improvement in {self.config.patience} trials (patience)"
        return None, ""

    def failure(self) -> str | None:
        """The model cannot train: trial 0 (the user's own settings) failed, or every finished trial failed."""
        finished = [(trial, state) for trial in self.run.trials()
                    if (state := trial.state()).status in (TrialStatus.SUCCEEDED, TrialStatus.FAILED,
                                                           TrialStatus.PRUNED) or trial.has_metrics()]
        failed = [(trial, state) for trial, state in finished
                  if state.status == TrialStatus.FAILED and not trial.has_metrics()]
        if not failed or (len(failed) < len(finished) and failed[0][0].number != 0):
            return None
        trial, state = failed[0]
        return f"trial {trial.number} failed: {state.reason}"

    # ------------------------------------------------------------------ ask

    def ask(self, busy: Collection[int] = (), *, create: bool = True) -> Step:
        """What the run does next. `busy`: trials training right now beside this caller (parallel trials).

        With create=False nothing is written: a run with no trial yet answers LAUNCH with trial None.
        """
        failure = self.failure()
        if failure:
            return Step(Action.DONE, reason=DoneReason.TRIAL_FAILED, message=failure)
        pending = [trial for trial in self.open_trials(busy) if self._readable(trial, create)]
        if pending:
            return Step(Action.LAUNCH, pending[0])
        if not self.run.trials():
            return Step(Action.LAUNCH, self._baseline() if create else None)
        best, value = self.best()
        met = self.objective.met(value)
        if met and not self.config.optimize:
            return Step(Action.DONE, reason=DoneReason.MET,
                        message=f"trial {best.number} reached {self.objective.compare(value)}")
        spent, why = self.budget()
        if spent is not None:
            return self._spent(spent, why)
        return Step(Action.PROPOSE)

    @staticmethod
    def _readable(trial: Trial, create: bool) -> bool:
        """A proposal whose hparams.json cannot be read fails (with why) instead of stopping the run or hiding."""
        try:
            trial.hparams()
            return True
        except MlciError as err:
            if create:
                trial.update_state(status=TrialStatus.FAILED, reason=err.message, ended_at=now_iso())
            return False

    def propose(self) -> Step:
        """Let the strategy write the next trial's hparams.json (job 4); DONE when it has nothing left."""
        from mlci.tuning.tweak import tweak

        trial = tweak(self.run, self.config)
        if trial is None:
            spent, why = self.budget()
            return self._spent(spent or DoneReason.STRATEGY, why or "the strategy has nothing left to try")
        return Step(Action.LAUNCH, trial)

    def next(self, busy: Collection[int] = ()) -> Step:
        """ask(), with PROPOSE carried out: LAUNCH a trial or DONE (the run is then finished, unless busy)."""
        with self.guard():
            step = self.ask(busy)
            if step.action is Action.PROPOSE:
                step = self.propose()
            if step.action is Action.DONE and not busy:
                self.finish(step)
            return step

    def _spent(self, reason: DoneReason, why: str) -> Step:
        best, value = self.best()
        if self.objective.met(value):  # --optimize searched on after meeting the threshold
            return Step(Action.DONE, reason=DoneReason.MET,
                        message=f"trial {best.number} reached {self.objective.compare(value)}; "
                                f"searched on for the best ({why})")
        return Step(Action.DONE, reason=reason, message=why)

    def _baseline(self) -> Trial:
        """Trial 0 trains the user's own hyperparameters, so the report shows what tuning changed."""
        from mlci.tuning.tweak import module_defaults

        trial = self.run.new_trial()
        defaults = module_defaults(Path(self.run.record().model_file))
        trial.write_hparams(HparamsRecord(trial=trial.number, hparams=defaults, proposed_by="baseline"))
        return trial

    # ------------------------------------------------------------------ tell

    def start(self) -> None:
        """A trial is about to train: the run is running again (a raised threshold or budget reopens it)."""
        with self.guard():
            record = self.run.record()
            if record.status != RunStatus.RUNNING:
                self.run.update(status=RunStatus.RUNNING, reason=None, finished_at=None, message=None)

    def tell(self, trial: Trial | None = None) -> None:
        """A trial has ended (its trial.json says how): record the best trial, and end the run if it is done."""
        with self.guard():
            self._record_best()
            if any(self.trial_status(t) is TrialStatus.RUNNING for t in self.run.trials()):
                return  # parallel trials still train: the verdict waits for them
            step = self.ask(create=False)
            if step.action is Action.DONE:
                self.finish(step)

    def _record_best(self) -> None:
        best, value = self.best()
        record = self.run.record()
        if best is not None and (record.best_trial != best.number or not self.run.best_dir.exists()):
            self.run.set_best(best)
        if (record.best_trial, record.best_value) != (best.number if best else None, value):
            self.run.update(best_trial=best.number if best else None, best_value=value)

    def finish(self, step: Step) -> RunRecord:
        """Write the verdict (idempotent: a run already ended for the same reason keeps its finish time)."""
        assert step.action is Action.DONE and step.reason is not None
        with self.guard():
            self._record_best()
            record = self.run.record()
            if record.status == step.reason.status and record.reason == step.reason and record.finished_at:
                return record
            self._tell_study()
            return self.run.update(status=step.reason.status, reason=step.reason, message=step.message,
                                   finished_at=now_iso())

    def fail(self, error: MlciError) -> RunRecord:
        """mlci could not go on (runner gone, corrupt store, ...): the run ends failed, with the error's line."""
        return self.finish(Step(Action.DONE, reason=DoneReason.ERROR, message=error.one_line()))

    def interrupt(self) -> None:
        with self.guard():
            self.run.update(status=RunStatus.INTERRUPTED, message="interrupted; run the same command again to continue")

    def _tell_study(self) -> None:
        """The study learns the last trials' results (a run may end without another proposal)."""
        try:
            from mlci.tuning.tweak import strategy_for

            strategy_for(self.run, self.config).finish()
        except Exception:  # noqa: BLE001  the verdict never waits on the study's bookkeeping
            pass

    # ------------------------------------------------------------------ outcome

    def outcome(self) -> Outcome:
        record = self.run.record()
        trials = self.run.trials()
        done = sum(1 for t in trials if self.trial_status(t).is_finished())
        status = RunStatus(record.status)
        next_step = (Step(Action.DONE, reason=record.reason, message=record.message or "") if status.is_finished()
                     else self.ask(create=False))
        return Outcome(self.run.id, status, record.reason, record.message, self.objective, record.best_trial,
                       record.best_value, len(trials), done, record.finished_at, next_step)
