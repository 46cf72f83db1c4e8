"""The embedded pipeline (`mlci run`): the whole chain in one process, a thin driver of the run oracle.

It asks the oracle what next, launches and follows trials (serially or `parallel` at once), and reports;
the Jenkins jobs drive the same oracle one step per build, so both end in the same run.json.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlci.core.config import Config
from mlci.core.errors import MlciError, trial_failure
from mlci.core.states import DoneReason, TrialStatus
from mlci.core.store import Run, RunStore, Trial, store_failure
from mlci.orchestration.lifecycle import Events, QuietEvents, adopt, failed_on, follow, spec_for, start_trial
from mlci.orchestration.oracle import Action, Outcome, RunOracle, Step
from mlci.orchestration.runs import prepare_run
from mlci.runners import Runner, get_runner
from mlci.tuning.tweak import script_knobs


@dataclass
class PipelineResult:
    run: Run
    outcome: Outcome

    @property
    def exit_code(self) -> int:
        return self.outcome.exit_code


# ----------------------------------------------------------------------------- the run


def run_pipeline(model_file: Path, *, store: RunStore, config_path: Path | None = None,
                 overrides: dict[str, Any] | None = None, commit: str | None = None,
                 runner_name: str | None = None, events: Events | None = None,
                 notify_outcome: bool = True) -> PipelineResult:
    events = events or QuietEvents()
    run, config = prepare_run(model_file, store=store, config_path=config_path, overrides=overrides, commit=commit)
    runner = get_runner(runner_name or config.runner, notice=events.notice, workers=config.workers,
                        idle_minutes=config.worker_idle_minutes)
    oracle = RunOracle(run, config)
    ahead = None
    try:
        _warm_up(run, runner)
        ahead = ImportAhead(config)
        return _drive(run, oracle, runner, config, events, notify_outcome)
    finally:
        getattr(runner, "close", lambda: None)()  # a warm worker ends; the trials it started do not
        for kept in getattr(runner, "kept", lambda: [])():
            events.notice(kept)
        if ahead is not None:
            ahead.stop()


def _warm_up(run: Run, runner: Runner) -> None:
    """A warm runner starts its worker now: the framework's import overlaps the rest of the preparation and
    the baseline's proposal instead of holding up the first trial. Nothing is lost if no trial runs."""
    warm_up = getattr(runner, "warm_up", None)
    if warm_up is not None:
        spec = spec_for(run, run.trial(0), run.record().config)  # the worker its trials will use
        warm_up(spec.framework, spec.model_file)


class ImportAhead:
    """Imports, in a background thread, what this process imports later anyway: the strategy's modules (Optuna
    and its database layer) and the report's (matplotlib). It runs while the warm worker imports the framework
    and the baseline trains, when this process only waits, so the first proposal and the end of the run do not
    wait for imports. Only imports run there: nothing the run decides or writes changes."""

    def __init__(self, config: Config):
        from mlci.tuning.strategies import STRATEGIES

        strategy = STRATEGIES.get(config.strategy)
        self.names = strategy.imports if strategy is not None else ()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._import_all, name="mlci-import-ahead", daemon=True)
        self._thread.start()

    def _import_all(self) -> None:
        import importlib

        from mlci.integrations.reports.plots import import_ahead

        for name in (*self.names, import_ahead):
            if self._stop.is_set():
                return
            try:
                name() if callable(name) else importlib.import_module(name)
            except Exception:  # noqa: BLE001  a missing extra is reported where it is used, as before
                pass

    def stop(self) -> None:
        """The run has ended: no further import starts; the one under way ends before this returns (an
        interpreter that exits while a thread imports can crash)."""
        self._stop.set()
        self._thread.join()


def _drive(run: Run, oracle: RunOracle, runner: Runner, config: Config, events: Events,
           notify_outcome: bool) -> PipelineResult:
    with run.lock():
        record = run.record()
        events.notice(f"run {run.id}: {record.model_name} is {record.kind.framework}/{record.kind.architecture} "
                      f"({record.kind.mode}), runner {runner.name}, threshold {oracle.objective.metric} "
                      f"{oracle.objective.sign(True)} {config.threshold:g}")
        try:
            _settle_measured_orphans(run, runner, config, events)
            step = _parallel(run, oracle, runner, config, events) if config.parallel > 1 else \
                _serial(run, oracle, runner, config, events)
        except KeyboardInterrupt:
            oracle.interrupt()
            raise
        except (MlciError, OSError) as exc:
            # An OSError here is the store or a trial's folder refusing a write (read-only, full): the run
            # ends failed with that line rather than staying "running" behind a traceback.
            err = exc if isinstance(exc, MlciError) else store_failure(Path(exc.filename or run.dir), exc, "be written")
            try:
                oracle.fail(err)
            except MlciError:
                pass  # run.json itself cannot be written: the error line says why
            _wrap_up(run, config, events, notify_outcome)
            if err is exc:
                raise
            raise err from None
        _wrap_up(run, config, events, notify_outcome)
        if step.reason == DoneReason.TRIAL_FAILED:
            failed = _first_failed(run)
            raise trial_failure(step.message, failed.state().exit_code if failed else None,
                                hint=f"see {failed.log_path}" if failed else None)
        return PipelineResult(run, oracle.outcome())


def _settle_measured_orphans(run: Run, runner: Runner, config: Config, events: Events) -> None:
    """Trials whose metrics were written but whose end no process recorded (the orchestrator was killed
    in between): the oracle no longer launches them, so they are settled here, or they stay "running"."""
    for trial in run.trials():
        if trial.has_metrics() and trial.state().status == TrialStatus.RUNNING:
            handle = adopt(run, trial, runner, config, events)
            if handle:
                follow(run, trial, runner, handle, config, events)


def _first_failed(run: Run) -> Trial | None:
    return next((t for t in run.trials() if RunOracle.trial_status(t) == TrialStatus.FAILED), None)


def _wrap_up(run: Run, config: Config, events: Events, notify_outcome: bool) -> None:
    from mlci.integrations.notify import announce

    announce(run, config.notify, echo=events.notice, send=notify_outcome, full_text=False, warn_only=True)


def _serial(run: Run, oracle: RunOracle, runner: Runner, config: Config, events: Events) -> Step:
    while True:
        first = not run.trials()
        step = oracle.next()
        if step.action is Action.DONE:
            return step
        trial = step.trial
        if first:
            knobs = script_knobs(Path(run.record().model_file))
            if knobs:
                events.notice(knobs)
        handle = start_trial(run, oracle, trial, runner, config, events)
        state = follow(run, trial, runner, handle, config, events) if handle else trial.state()
        failed_on(oracle, trial, state, events)


def _parallel(run: Run, oracle: RunOracle, runner: Runner, config: Config, events: Events) -> Step:
    """`parallel` trials at once: the farm's loop (`mlci worker`), run by that many local workers."""
    from mlci.orchestration.farm import work_together

    work_together(run, config.parallel, runner=runner, events=events)
    return oracle.next()
