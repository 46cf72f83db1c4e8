"""The embedded pipeline (`mlci run`): detect → train → check → tweak → retrain … → notify → report.

Each step is the same function the Jenkins jobs call one by one (launch, wait, check, tweak,
notify); here they run in one process, and a killed `mlci run` continues where it stopped.
"""
from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from mlci.core.objective import best_trial, meets
from mlci.core.config import Config, load_config
from mlci.source.detect import detect
from mlci.core.errors import (EXIT_BELOW_THRESHOLD, EXIT_OK, EXIT_TRIAL_FAILED, MlciError, TrialError,
                         UsageError)
from mlci.runners import LaunchSpec, Runner, get_runner
from mlci.core.store import (HparamsRecord, Kind, MetricsRecord, Run, RunRecord, RunStore, Trial, TrialState,
                        file_hash, make_run_id, now_iso, write_trial_spec)
from mlci.tuning.tweak import budget_left, module_defaults, script_knobs, tweak


class Events(Protocol):
    """What the pipeline tells the person watching (the CLI draws it; the core never prints)."""

    def notice(self, text: str) -> None: ...
    def trial_started(self, trial: Trial, hparams: HparamsRecord) -> None: ...
    def trial_progress(self, trial: Trial, epoch: int, epochs: int | None, value: float | None) -> None: ...
    def trial_finished(self, trial: Trial, metrics: MetricsRecord | None, state: TrialState) -> None: ...


class QuietEvents:
    def notice(self, text: str) -> None:
        pass

    def trial_started(self, trial, hparams) -> None:
        pass

    def trial_progress(self, trial, epoch, epochs, value) -> None:
        pass

    def trial_finished(self, trial, metrics, state) -> None:
        pass


@dataclass
class PipelineResult:
    run: Run
    status: str
    best_trial: int | None
    best_value: float | None
    trials: int
    message: str

    @property
    def exit_code(self) -> int:
        return {"met": EXIT_OK, "exhausted": EXIT_BELOW_THRESHOLD}.get(self.status, EXIT_TRIAL_FAILED)


# ----------------------------------------------------------------------------- run creation


def prepare_run(model_file: Path, *, store: RunStore, config_path: Path | None = None,
                overrides: dict[str, Any] | None = None, commit: str | None = None) -> tuple[Run, Config]:
    """Validate the config, detect the model kind, create (or continue) the run for this content."""
    model_file = Path(model_file)
    if not model_file.exists():
        raise UsageError(f"{model_file}: model file not found", hint="pass the path of your model's .py file")
    config, _ = load_config(model_file, config_path, overrides)
    detection = detect(model_file, config=config)
    entry = Path(detection.entry).resolve()
    kind = Kind(framework=detection.framework, architecture=detection.architecture, mode=detection.mode)
    image = detection.image(config.images)
    content_hash = file_hash(entry)
    run_id = make_run_id(entry, content_hash, commit)
    record = RunRecord(run_id=run_id, model_name=entry.stem, model_file=str(entry), source_dir=str(entry.parent),
                       content_hash=content_hash, commit=commit, kind=kind, image=image,
                       config=config.model_dump(mode="json", by_alias=True))
    run = store.open_run(record)
    existing = run.record()
    # Continuing a run: the config given now (a larger budget, say) wins; what was learned stays.
    run.update(config=record.config, kind=kind, image=image)
    from mlci.tuning.tweak import strategy_for

    strategy_for(run, config)  # a bad search space is reported now, before anything trains
    if existing.status in ("met", "exhausted") and budget_left(run, config)[0] and existing.status == "exhausted":
        run.update(status="running")
    return run, config


# ----------------------------------------------------------------------------- one trial


def spec_for(run: Run, trial: Trial, config: Config) -> LaunchSpec:
    record = run.record()
    return LaunchSpec(run_id=run.id, trial=trial.number, model_name=record.model_name,
                      model_file=Path(record.model_file), source_dir=Path(record.source_dir),
                      trial_dir=trial.dir.resolve(), framework=record.kind.framework if record.kind else "keras",
                      image=record.image, resources=config.resources)


def launch_trial(run: Run, trial: Trial, runner: Runner, config: Config) -> str:
    """Start training a trial whose hparams.json exists; record the handle in trial.json."""
    if not trial.hparams_path.exists():
        raise UsageError(f"{trial.dir}: no hparams.json", hint=f"propose one with `mlci tweak --run {run.id}`")
    write_trial_spec(trial, config)  # the run's settings join the proposal; a broken hparams.json is reported here
    (trial.dir / "error.txt").unlink(missing_ok=True)
    handle = runner.start(spec_for(run, trial, config))
    state = trial.state()
    trial.write_state(state.model_copy(update={
        "status": "running", "runner": runner.name, "pid": int(handle) if handle.isdigit() else None,
        "container_id": None if handle.isdigit() else handle, "image": run.record().image if runner.name == "docker" else None,
        "started_at": state.started_at or now_iso(), "launched_at": time.time(), "ended_at": None, "exit_code": None,
        "reason": None}))
    return handle


def wait_trial(run: Run, trial: Trial, runner: Runner, handle: str, config: Config,
               events: Events | None = None, poll: float = 0.25) -> TrialState:
    """Wait for a trial, restarting it from its checkpoint when it dies (the monitor's decision); its outcome."""
    from mlci.orchestration.monitor import follow

    return follow(run, trial, runner, handle, config, events or QuietEvents(), poll=poll)


_BEST_LOCK = threading.Lock()  # parallel trials end in threads: run.json is read, changed, written


def update_best(run: Run) -> None:
    with _BEST_LOCK:
        best, value = best_trial(run)
        record = run.record()
        if best is not None and (record.best_trial != best.number or not run.best_dir.exists()):
            run.set_best(best)
        run.update(best_trial=best.number if best else None, best_value=value)


# ----------------------------------------------------------------------------- the loop


def next_trial(run: Run) -> Trial | None:
    """The first trial that has a proposal but no outcome yet (resumed after a kill), else None."""
    for trial in run.trials():
        if not trial.hparams_path.exists() or trial.has_metrics():
            continue
        if trial.state().status in ("pending", "running"):
            return trial
    return None


def baseline_trial(run: Run) -> Trial:
    """Trial 0 trains the user's own hyperparameters, so the report shows what tuning changed."""
    trial = run.new_trial()
    defaults = module_defaults(Path(run.record().model_file))
    trial.write_hparams(HparamsRecord(trial=trial.number, hparams=defaults, proposed_by="baseline"))
    return trial


def _resume_or_launch(run: Run, trial: Trial, runner: Runner, config: Config, events: Events) -> str | None:
    """A trial left running by a killed `mlci run` is followed if alive, relaunched if not; None once closed."""
    if trial.state().status == "running":
        from mlci.orchestration.monitor import adopt

        return adopt(run, trial, runner, config, events)
    return launch_trial(run, trial, runner, config)


def run_pipeline(model_file: Path, *, store: RunStore, config_path: Path | None = None,
                 overrides: dict[str, Any] | None = None, commit: str | None = None,
                 runner_name: str | None = None, events: Events | None = None,
                 notify_outcome: bool = True) -> PipelineResult:
    events = events or QuietEvents()
    run, config = prepare_run(model_file, store=store, config_path=config_path, overrides=overrides, commit=commit)
    runner = get_runner(runner_name or config.runner, notice=events.notice)
    with run.lock():
        record = run.record()
        events.notice(f"run {run.id}: {record.model_name} is {record.kind.framework}/{record.kind.architecture} "
                      f"({record.kind.mode}), runner {runner.name}, threshold {config.metric} ≥ {config.threshold:g}")
        still_met = meets(record.best_value, config.threshold, config.metric)  # the threshold may have been raised
        if record.status == "met" and still_met and not (config.optimize and budget_left(run, config)[0]):
            return _result(run, "met", "threshold already met by this run")
        run.update(status="running", finished_at=None)
        try:
            status, message = _loop(run, runner, config, events)
        except KeyboardInterrupt:
            run.update(status="interrupted", message="interrupted; run `mlci run` again to continue")
            raise
        except MlciError as err:
            run.update(status="failed", finished_at=now_iso(), message=err.one_line())
            _wrap_up(run, config, events, notify_outcome)
            raise
        run.update(status=status, finished_at=now_iso(), message=message)
        _wrap_up(run, config, events, notify_outcome)
        return _result(run, status, message)


def _result(run: Run, status: str, message: str) -> PipelineResult:
    record = run.record()
    return PipelineResult(run, status, record.best_trial, record.best_value, len(run.trials()), message)


def _wrap_up(run: Run, config: Config, events: Events, notify_outcome: bool) -> None:
    from mlci.integrations.report import write_report

    try:
        write_report(run)
    except Exception as exc:  # a report must never hide the outcome
        events.notice(f"warning: the report could not be written ({type(exc).__name__}: {exc})")
    if notify_outcome:
        from mlci.integrations.notify import notify

        try:
            notify(run, config=config.notify, echo=events.notice, full_text=False)
        except MlciError as err:
            events.notice(f"warning: {err.one_line()}")


def _met(run: Run, config: Config) -> str | None:
    best = run.record()
    if best.best_value is not None and meets(best.best_value, config.threshold, config.metric):
        return f"trial {best.best_trial} reached {config.metric} {best.best_value:.4f}"
    return None


def _outcome(run: Run, config: Config, why: str) -> tuple[str, str]:
    """The budget (or the strategy) is spent: met if the best trial meets the threshold (--optimize)."""
    met = _met(run, config)
    return ("met", f"{met}; searched on for the best ({why})") if met else ("exhausted", why)


def _loop(run: Run, runner: Runner, config: Config, events: Events) -> tuple[str, str]:
    if config.parallel > 1:
        return _parallel_loop(run, runner, config, events)
    while True:
        trial = next_trial(run)
        if trial is None and not run.trials():
            trial = baseline_trial(run)
            knobs = script_knobs(Path(run.record().model_file))
            if knobs:
                events.notice(knobs)
        if trial is None:
            met = _met(run, config)
            if met and not config.optimize:
                return "met", met
            ok, why = budget_left(run, config)
            if not ok:
                return _outcome(run, config, why)
            trial = tweak(run, config)
            if trial is None:
                return _outcome(run, config, "the strategy has nothing left to try")
        hparams = trial.hparams()
        events.trial_started(trial, hparams)
        handle = _resume_or_launch(run, trial, runner, config, events)
        state = wait_trial(run, trial, runner, handle, config, events) if handle else trial.state()
        if state.status == "failed":
            if trial.number == 0 or not any(t.has_metrics() for t in run.trials()):
                raise TrialError(f"trial {trial.number} failed: {state.reason}",
                                 hint=f"see {trial.log_path}")
            events.notice(f"trial {trial.number} failed ({state.reason}); moving on to the next proposal")


def _next_to_start(run: Run, config: Config, busy: set[int]) -> tuple[Trial | None, str]:
    """A trial to start now beside the `busy` ones, or None and why nothing is to start."""
    for trial in run.trials():
        if trial.number in busy or not trial.hparams_path.exists() or trial.has_metrics():
            continue
        if trial.state().status in ("pending", "running"):
            return trial, ""
    if not run.trials():
        return baseline_trial(run), ""
    met = _met(run, config)
    if met and not config.optimize:
        return None, met
    ok, why = budget_left(run, config)
    if not ok:
        return None, why
    trial = tweak(run, config, busy=busy)
    return trial, "" if trial else "the strategy has nothing left to try"


def _parallel_loop(run: Run, runner: Runner, config: Config, events: Events) -> tuple[str, str]:
    """`parallel` trials train at once against the same study; each is watched by its own thread."""
    finished: queue.Queue = queue.Queue()
    active: dict[int, threading.Thread] = {}
    fatal: BaseException | None = None
    why = ""

    def watch(trial: Trial, handle: str) -> None:
        try:
            state = wait_trial(run, trial, runner, handle, config, events) if handle else trial.state()
            finished.put((trial, state, None))
        except BaseException as exc:  # handed to the main thread, which decides
            finished.put((trial, None, exc))

    while True:
        while fatal is None and len(active) < config.parallel:
            trial, why = _next_to_start(run, config, set(active))
            if trial is None:
                break
            events.trial_started(trial, trial.hparams())
            handle = _resume_or_launch(run, trial, runner, config, events)  # None: closed meanwhile
            # Daemon threads: Ctrl-C ends mlci at once; the trials go on and the next `mlci run` collects them.
            thread = threading.Thread(target=watch, args=(trial, handle), name=f"mlci-trial-{trial.number}",
                                      daemon=True)
            active[trial.number] = thread
            thread.start()
        if not active:
            break
        while True:
            try:
                trial, state, error = finished.get(timeout=0.5)
                break
            except queue.Empty:
                continue
        active.pop(trial.number, None)
        if error is not None:
            fatal = fatal or error
        elif state.status == "failed":
            if trial.number == 0 or not any(t.has_metrics() for t in run.trials()):
                fatal = fatal or TrialError(f"trial {trial.number} failed: {state.reason}", hint=f"see {trial.log_path}")
            else:
                events.notice(f"trial {trial.number} failed ({state.reason}); moving on to the next proposal")
    if fatal is not None:
        raise fatal
    met = _met(run, config)
    if met and not config.optimize:
        return "met", met
    return _outcome(run, config, why or "the budget is spent")
