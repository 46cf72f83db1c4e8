"""One trial's life: launch it, follow it, and settle its end (restart from the checkpoint, or close it).

One decision (`settle`) serves every caller — `mlci run`, `mlci wait`, the monitor — under a per-trial lock,
so two processes that see the same death never relaunch the trial twice; a closed trial is told to the oracle.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Literal

from mlci.core.config import Config
from mlci.core.errors import MlciError, UsageError
from mlci.core.states import TrialStatus
from mlci.core.store import CRASH_FILE, STOP_FILE, Restart, Run, Trial, TrialState, now_iso, write_trial_spec
from mlci.orchestration.failures import Failure, classify, failure_reason, limit_reached
from mlci.orchestration.oracle import RunOracle
from mlci.runners import LaunchSpec, Runner, Status, get_runner
from mlci.runners.logtee import cap_appended_log

LOCK_NAME = ".monitor.lock"

Action = Literal["alive", "restarted", "adopted", "succeeded", "pruned", "failed", "settled", "busy"]


# ----------------------------------------------------------------------------- what the store says


def handle_of(state: TrialState) -> str | None:
    return str(state.pid) if state.pid else state.container_id


def heartbeat(trial: Trial) -> dict[str, Any]:
    try:
        beat = json.loads(trial.heartbeat_path.read_text())
    except (OSError, ValueError):
        return {}
    return beat if isinstance(beat, dict) else {}


def checkpoint_epoch(trial: Trial) -> int | None:
    """Completed epochs the trial's checkpoint holds: where a restart resumes (None: no checkpoint yet)."""
    # keras/: a model module's fit; keras-fit-<n>/: the n-th fit of a plain script (script mode), the last one counts
    fits = sorted(trial.checkpoints.glob("keras-fit-*/training_metadata.json"),
                  key=lambda p: int(p.parent.name.rsplit("-", 1)[-1]) if p.parent.name.rsplit("-", 1)[-1].isdigit() else 0)
    for meta in [trial.checkpoints / "keras" / "training_metadata.json", *reversed(fits)]:
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            return int(json.loads(meta.read_text())["epoch"])
    saved = [int(p.stem.split("-")[-1]) for p in [*(trial.checkpoints / "sklearn").glob("epoch-*.joblib"),
                                                   *(trial.checkpoints / "torch").glob("epoch-*.pt")]
             if p.stem.split("-")[-1].isdigit()]  # a scikit-learn estimator's or a PyTorch module's epochs
    if saved:
        return max(saved)
    epoch = heartbeat(trial).get("epoch")
    return epoch if isinstance(epoch, int) and epoch > 0 else None


def epochs_logged(trial: Trial) -> int:
    """Epochs finished so far by any attempt (the harness appends and fsyncs one line per epoch)."""
    try:
        lines = (trial.checkpoints / "epochs.jsonl").read_text().splitlines()
    except OSError:
        return 0
    return sum(1 for line in lines if line.strip().endswith("}"))


def backoff_delay(restart_number: int, base: float) -> float:
    """The first restart is immediate (a kill is rarely a loop); then base, 2*base, 4*base ..."""
    return 0.0 if restart_number <= 1 else base * 2 ** (restart_number - 2)


# ----------------------------------------------------------------------------- is it alive?


def _cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def inspect(trial: Trial, runner: Runner, handle: str | None, state: TrialState,
            stale_after: float | None = None, config: Config | None = None) -> tuple[Status, bool]:
    """The trial's process or container as it is now, and whether it must be stopped: silent too long (hung),
    or past a limit of `config` (no progress, trial_minutes, max_minutes: then the state is "stopped")."""
    if not handle:
        return Status("missing", "", reason="no process or container recorded"), False
    cap_appended_log(trial.log_path)  # a trial printing in a loop cannot fill the disk (Docker's logtee caps its own)
    status_for = getattr(runner, "status_for", None)
    status = status_for(handle, trial.dir) if status_for else runner.status(handle)
    if status.finished:
        return status, False
    if runner.name == "local" and handle.isdigit() and int(handle) not in getattr(runner, "_children", {}):
        command = _cmdline(int(handle))
        if not command:  # exiting this instant (a zombie has no command line): its end is known next time
            status = status_for(handle, trial.dir) if status_for else runner.status(handle)
            if status.finished:
                return status, False
        elif str(trial.dir.resolve()) not in command:
            # After a reboot the pid can belong to another program: not our trial, and never ours to kill.
            return Status("missing", handle, reason=f"process {handle} is gone (the pid now belongs to another "
                                                    f"program: host rebooted?)"), False
    if stale_after is not None:
        beat = heartbeat(trial).get("time")
        last = max(beat if isinstance(beat, (int, float)) else 0.0, state.launched_at or 0.0)
        if last and time.time() - last > stale_after:
            return Status("killed", handle, reason=f"no heartbeat for {time.time() - last:.0f}s (hung or frozen)"), True
    if config is not None:
        reason = limit_reached(trial.run, trial, state, config)
        if reason:
            return Status("stopped", handle, reason=reason), True
    return status, False


# ----------------------------------------------------------------------------- the decision


@dataclass
class Verdict:
    """What `settle` did: restarted or adopted (follow `handle`), or the trial's end (`state`)."""

    action: Action
    state: TrialState
    handle: str | None = None
    restart: Restart | None = None
    detected_at: float = 0.0  # time.time() when the death was seen
    relaunched_at: float | None = None


@contextlib.contextmanager
def trial_lock(trial: Trial, blocking: bool = True) -> Iterator[bool]:
    """One process at a time decides about a trial; the others adopt what it decided."""
    trial.dir.mkdir(parents=True, exist_ok=True)
    with open(trial.dir / LOCK_NAME, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def emit(events: Any, name: str, *args: Any) -> None:
    hook = getattr(events, name, None)
    if hook is not None:
        hook(*args)


def settle(run: Run, trial: Trial, runner: Runner, config: Config, handle: str | None, status: Status, *,
           events: Any = None, hung: bool = False, blocking: bool = True, note: str | None = None,
           tell: bool = True, sleep: Callable[[float], None] = time.sleep) -> Verdict:
    """A trial's process ended (or hung): record it and restart it from its checkpoint, or close it.

    Atomic under the trial's lock: if trial.json no longer names `handle`, another process has already
    decided, and its decision is adopted instead of made twice.
    """
    detected_at = time.time()
    with trial_lock(trial, blocking) as locked:
        state = trial.state()
        if not locked:
            return Verdict("busy", state, handle, detected_at=detected_at)
        if state.status != TrialStatus.RUNNING:
            return Verdict("settled", state, detected_at=detected_at)
        current = handle_of(state)
        if current != handle:
            return Verdict("adopted", state, current, detected_at=detected_at)
        if hung and handle:
            runner.kill(handle)
        emit(events, "trial_died", trial, status, detected_at)
        if status.succeeded and trial.has_metrics():
            return Verdict("succeeded", _close(run, trial, state, TrialStatus.SUCCEEDED, status, events, tell),
                           detected_at=detected_at)
        if status.succeeded and (trial.dir / "pruned.json").exists():  # stopped early by the tuner: an outcome
            return Verdict("pruned", _close(run, trial, state, TrialStatus.PRUNED, status, events, tell),
                           detected_at=detected_at)
        failure = classify(trial, status, state.restarts)
        if failure.transient and len(state.restarts) < config.max_restarts:
            reason = f"{note}: {failure.reason}" if note else failure.reason
            restart = Restart(at=now_iso(), reason=reason, exit_code=status.exit_code,
                              resumed_from_epoch=checkpoint_epoch(trial), failure=failure.signature)
            state.restarts.append(restart)
            trial.write_state(state)
            delay = backoff_delay(len(state.restarts), config.monitor.backoff)
            epoch = "the start" if restart.resumed_from_epoch is None else f"epoch {restart.resumed_from_epoch}"
            notice(events, f"trial {trial.number} {reason}; restarting it from {epoch}"
                            + (f" in {delay:g}s" if delay else "") + f" [{len(state.restarts)}/{config.max_restarts}]")
            sleep(delay)
            try:
                new_handle = launch_trial(run, trial, runner, config)
            except BaseException:
                state.restarts.pop()  # not restarted after all: the next look at the trial tries again
                trial.write_state(state)
                raise
            relaunched_at = time.time()
            emit(events, "trial_restarted", trial, restart, new_handle)
            return Verdict("restarted", trial.state(), new_handle, restart, detected_at, relaunched_at)
        return Verdict("failed", _close(run, trial, state, TrialStatus.FAILED, status, events, tell, failure),
                       detected_at=detected_at)


def notice(events: Any, text: str) -> None:
    emit(events, "notice", text)


def _close(run: Run, trial: Trial, state: TrialState, outcome: TrialStatus, status: Status, events: Any,
           tell: bool, failure: Failure | None = None) -> TrialState:
    """Write the trial's end into trial.json and tell the oracle (unless another process drives the run)."""
    reason = None if failure is None else failure.reason
    if outcome == TrialStatus.PRUNED:
        from mlci.tuning.pruning import read_pruned

        pruned = read_pruned(trial)
        reason = (f"pruned at epoch {pruned.epoch} ({pruned.metric} {pruned.value:.4f}, {pruned.pruner} pruner)"
                  if pruned and pruned.value is not None else "pruned")
    if failure is not None and failure.transient:
        reason = failure_reason(trial, status)
        if state.restarts:
            reason = f"crash loop: gave up after {len(state.restarts)} restarts; {reason}"
    wall = None
    if state.started_at:
        from datetime import datetime

        wall = round(time.time() - datetime.fromisoformat(state.started_at).timestamp(), 3)
    state = state.model_copy(update={"status": outcome, "exit_code": status.exit_code, "reason": reason,
                                     "ended_at": now_iso(), "wall_seconds": wall})
    trial.write_state(state)
    if tell:
        RunOracle(run).tell(trial)
    metrics = None
    if outcome == TrialStatus.SUCCEEDED:
        with contextlib.suppress(MlciError):
            metrics = trial.metrics()
    track(run, events)
    emit(events, "trial_finished", trial, metrics, state)
    return state


def track(run: Run, events: Any = None) -> None:
    """Copy the ended trials to the tracking server, if the run has one; never fails the trial."""
    from mlci.integrations.tracking import sync

    sync(run, notice=lambda text: notice(events, text))


# ----------------------------------------------------------------------------- following one trial


def follow(run: Run, trial: Trial, runner: Runner, handle: str, config: Config, events: Any = None,
           poll: float = 0.25) -> TrialState:
    """Wait for a trial to end, restarting it (or adopting another process's restart) until it settles."""
    stale_after = config.monitor.heartbeat_timeout
    last_epoch = -1
    last_check = 0.0
    while True:
        status = runner.wait(handle, timeout=poll)
        beat = heartbeat(trial)
        if beat.get("epoch", -1) != last_epoch:
            last_epoch = beat.get("epoch", 0)
            emit(events, "trial_progress", trial, last_epoch, beat.get("epochs"), beat.get("value"))
        hung = False
        if not status.finished:
            if time.monotonic() - last_check < 1.0:
                continue
            last_check = time.monotonic()
            state = trial.state()
            if handle_of(state) != handle or state.status != TrialStatus.RUNNING:
                # Another process (a monitor) restarted or closed the trial while this one waited.
                status, hung = Status("missing", handle, reason="replaced by another mlci process"), False
            else:
                status, hung = inspect(trial, runner, handle, state, stale_after, config)
                if not status.finished and not hung:
                    continue
        else:
            status, _ = inspect(trial, runner, handle, trial.state())
        verdict = settle(run, trial, runner, config, handle, status, events=events, hung=hung)
        if verdict.action in ("restarted", "adopted") and verdict.handle:
            handle = verdict.handle
            last_epoch = -1
            continue
        if verdict.action == "settled":  # closed by another process: make the best trial current here too
            RunOracle(run).tell(trial)
            metrics = None
            if verdict.state.status == TrialStatus.SUCCEEDED:
                with contextlib.suppress(MlciError):
                    metrics = trial.metrics()
            track(run, events)
            emit(events, "trial_finished", trial, metrics, verdict.state)
        return verdict.state


def adopt(run: Run, trial: Trial, runner: Runner, config: Config, events: Any = None) -> str | None:
    """A trial left "running" by an orchestrator that died: its live handle, or a relaunch; None once closed."""
    state = trial.state()
    handle = handle_of(state)
    watcher = runner
    if state.runner and state.runner != runner.name:
        try:
            watcher = get_runner(state.runner)
        except MlciError:
            watcher = None
    if watcher is None:
        status, hung = Status("missing", handle or "", reason=f"its runner ({state.runner}) is unavailable"), False
    else:
        status, hung = inspect(trial, watcher, handle, state, config.monitor.heartbeat_timeout, config)
        if not status.finished and not hung:
            return handle
        if hung and watcher is not runner:  # settle() would stop it with the wrong runner
            watcher.kill(handle)
            hung = False
    verdict = settle(run, trial, runner, config, handle, status, events=events, hung=hung,
                     note="found dead after the orchestrator stopped")
    return verdict.handle if verdict.action in ("restarted", "adopted") else None

# ----------------------------------------------------------------------------- launching


def spec_for(run: Run, trial: Trial, config: Config) -> LaunchSpec:
    """Where and how the runner starts the harness; what the harness trains with is in the trial's spec."""
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
    (trial.dir / CRASH_FILE).unlink(missing_ok=True)
    (trial.dir / STOP_FILE).unlink(missing_ok=True)
    handle = runner.start(spec_for(run, trial, config))
    state = trial.state()
    trial.write_state(state.model_copy(update={
        "status": TrialStatus.RUNNING, "runner": runner.name, "pid": int(handle) if handle.isdigit() else None,
        "container_id": None if handle.isdigit() else handle, "image": run.record().image if runner.name == "docker" else None,
        "started_at": state.started_at or now_iso(), "launched_at": time.time(), "ended_at": None, "exit_code": None,
        "reason": None}))
    return handle
