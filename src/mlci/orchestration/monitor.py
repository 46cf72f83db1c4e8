"""Job 6, the monitor: a trial whose process or container died is started again, and resumes from its checkpoint.

One decision (`settle`) serves every caller — `mlci monitor`, `mlci run`, `mlci wait` — under a per-trial
lock, so two processes that see the same death never relaunch the trial twice.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import queue
import select
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Literal

from mlci.core.config import Config
from mlci.core.errors import EXIT_DETECTION, EXIT_METRICS, EXIT_TRIAL_FAILED, EXIT_USAGE, MlciError
from mlci.runners import Runner, Status, get_runner
from mlci.core.store import Restart, Run, RunStore, Trial, TrialState, now_iso

# Exit codes of a harness that diagnosed a mistake in the model or its input (and said so in error.txt):
# the same code fails the same way again, so restarting it only delays the verdict.
DIAGNOSED_EXITS = {EXIT_USAGE, EXIT_DETECTION, EXIT_TRIAL_FAILED, EXIT_METRICS}
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
    saved = [int(p.stem.split("-")[-1]) for p in (trial.checkpoints / "sklearn").glob("epoch-*.joblib")
             if p.stem.split("-")[-1].isdigit()]
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


def _log_tail(trial: Trial, lines: int = 3) -> str:
    try:
        text = trial.log_path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    kept = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return " | ".join(kept[-lines:])[-400:]


def failure_reason(trial: Trial, status: Status) -> str:
    """Why a trial ended badly, in one line: the harness's own diagnosis, else the status and the log's end."""
    error_file = trial.dir / "error.txt"
    if error_file.exists():
        text = error_file.read_text(encoding="utf-8", errors="replace").strip()
        if text:
            return text
    tail = _log_tail(trial)
    return f"{status.reason or status.state}" + (f"; last log lines: {tail}" if tail else "")


def restartable(trial: Trial, status: Status) -> bool:
    """Killed, OOM-killed, gone, or a non-zero exit the harness did not diagnose: worth a restart."""
    if status.state in ("killed", "oom", "missing"):
        return True
    if status.state == "exited" and status.exit_code not in (0, None):
        return not (status.exit_code in DIAGNOSED_EXITS and (trial.dir / "error.txt").exists())
    return False


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
            stale_after: float | None = None) -> tuple[Status, bool]:
    """The trial's process or container as it is now, and whether it is alive but silent too long (hung)."""
    if not handle:
        return Status("missing", "", reason="no process or container recorded"), False
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


def _emit(events: Any, name: str, *args: Any) -> None:
    hook = getattr(events, name, None)
    if hook is not None:
        hook(*args)


def settle(run: Run, trial: Trial, runner: Runner, config: Config, handle: str | None, status: Status, *,
           events: Any = None, hung: bool = False, blocking: bool = True, note: str | None = None,
           update_best: bool = True, sleep: Callable[[float], None] = time.sleep) -> Verdict:
    """A trial's process ended (or hung): record it and restart it from its checkpoint, or close it.

    Atomic under the trial's lock: if trial.json no longer names `handle`, another process has already
    decided, and its decision is adopted instead of made twice.
    """
    from mlci.orchestration import pipeline

    detected_at = time.time()
    with trial_lock(trial, blocking) as locked:
        state = trial.state()
        if not locked:
            return Verdict("busy", state, handle, detected_at=detected_at)
        if state.status != "running":
            return Verdict("settled", state, detected_at=detected_at)
        current = handle_of(state)
        if current != handle:
            return Verdict("adopted", state, current, detected_at=detected_at)
        if hung and handle:
            runner.kill(handle)
        _emit(events, "trial_died", trial, status, detected_at)
        if status.succeeded and trial.has_metrics():
            return Verdict("succeeded", _close(run, trial, state, "succeeded", status, events, update_best),
                           detected_at=detected_at)
        if status.succeeded and (trial.dir / "pruned.json").exists():  # stopped early by the tuner: an outcome
            return Verdict("pruned", _close(run, trial, state, "pruned", status, events, update_best),
                           detected_at=detected_at)
        if restartable(trial, status) and len(state.restarts) < config.max_restarts:
            reason = "OOM-killed" if status.state == "oom" else (status.reason or status.state)
            if note:
                reason = f"{note}: {reason}"
            restart = Restart(at=now_iso(), reason=reason, exit_code=status.exit_code,
                              resumed_from_epoch=checkpoint_epoch(trial))
            state.restarts.append(restart)
            trial.write_state(state)
            delay = backoff_delay(len(state.restarts), config.monitor.backoff)
            epoch = "the start" if restart.resumed_from_epoch is None else f"epoch {restart.resumed_from_epoch}"
            _notice(events, f"trial {trial.number} {reason}; restarting it from {epoch}"
                            + (f" in {delay:g}s" if delay else "") + f" [{len(state.restarts)}/{config.max_restarts}]")
            sleep(delay)
            try:
                new_handle = pipeline.launch_trial(run, trial, runner, config)
            except BaseException:
                state.restarts.pop()  # not restarted after all: the next look at the trial tries again
                trial.write_state(state)
                raise
            relaunched_at = time.time()
            _emit(events, "trial_restarted", trial, restart, new_handle)
            return Verdict("restarted", trial.state(), new_handle, restart, detected_at, relaunched_at)
        if status.succeeded:
            status = Status("exited", status.handle, exit_code=0, reason="exited 0 without writing metrics.json")
        return Verdict("failed", _close(run, trial, state, "failed", status, events, update_best),
                       detected_at=detected_at)


def _notice(events: Any, text: str) -> None:
    _emit(events, "notice", text)


def _close(run: Run, trial: Trial, state: TrialState, outcome: str, status: Status, events: Any,
           update_best: bool) -> TrialState:
    from mlci.orchestration import pipeline

    reason = None if outcome == "succeeded" else failure_reason(trial, status)
    if outcome == "pruned":
        from mlci.tuning.pruning import read_pruned

        pruned = read_pruned(trial)
        reason = (f"pruned at epoch {pruned.epoch} ({pruned.metric} {pruned.value:.4f}, {pruned.pruner} pruner)"
                  if pruned and pruned.value is not None else "pruned")
    if outcome == "failed" and state.restarts and restartable(trial, status):
        reason = f"crash loop: gave up after {len(state.restarts)} restarts; {reason}"
    wall = None
    if state.started_at:
        from datetime import datetime

        wall = round(time.time() - datetime.fromisoformat(state.started_at).timestamp(), 3)
    state = state.model_copy(update={"status": outcome, "exit_code": status.exit_code, "reason": reason,
                                     "ended_at": now_iso(), "wall_seconds": wall})
    trial.write_state(state)
    if update_best:
        pipeline.update_best(run)
    metrics = None
    if outcome == "succeeded":
        with contextlib.suppress(MlciError):
            metrics = trial.metrics()
    _emit(events, "trial_finished", trial, metrics, state)
    return state


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
            _emit(events, "trial_progress", trial, last_epoch, beat.get("epochs"), beat.get("value"))
        hung = False
        if not status.finished:
            if time.monotonic() - last_check < 1.0:
                continue
            last_check = time.monotonic()
            state = trial.state()
            if handle_of(state) != handle or state.status != "running":
                # Another process (a monitor) restarted or closed the trial while this one waited.
                status, hung = Status("missing", handle, reason="replaced by another mlci process"), False
            else:
                status, hung = inspect(trial, runner, handle, state, stale_after)
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
            from mlci.orchestration import pipeline

            pipeline.update_best(run)
            metrics = None
            if verdict.state.status == "succeeded":
                with contextlib.suppress(MlciError):
                    metrics = trial.metrics()
            _emit(events, "trial_finished", trial, metrics, verdict.state)
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
        status, hung = inspect(trial, watcher, handle, state, config.monitor.heartbeat_timeout)
        if not status.finished and not hung:
            return handle
        if hung and watcher is not runner:  # settle() would stop it with the wrong runner
            watcher.kill(handle)
            hung = False
    verdict = settle(run, trial, runner, config, handle, status, events=events, hung=hung,
                     note="found dead after the orchestrator stopped")
    return verdict.handle if verdict.action in ("restarted", "adopted") else None


# ----------------------------------------------------------------------------- Optuna


def _study_links(run: Run, study_name: str) -> dict[int, int]:
    """Study trial number -> mlci trial number, from the `optuna` link the strategy writes into hparams.json."""
    links = {}
    for trial in run.trials():
        try:
            record = trial.hparams()
        except MlciError:
            continue
        link = record.optuna_link()
        if link.get("study") == study_name and isinstance(link.get("trial"), int):
            links[link["trial"]] = trial.number
    return links


def close_abandoned_study_trials(run: Run, *, dry_run: bool = False) -> int:
    """Optuna trials left RUNNING by a dead orchestrator are closed; one whose proposal was lost is queued again.

    An Optuna trial names its mlci trial in the user attribute `mlci_trial`, or through the `optuna` link
    the Optuna strategy writes into that trial's hparams.json. If that trial trained, its
    value is told; if it failed, the failure; if it never reached the run store, the trial is failed and
    its parameters proposed again. Pending or running mlci trials are left alone: they will be told.
    Returns how many were (or, with dry_run, would be) closed.
    """
    if not run.study_path.exists():
        return 0
    try:
        import optuna
    except ImportError:
        return 0
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = f"sqlite:///{run.study_path.resolve()}"
    closed = 0
    for summary in optuna.get_all_study_summaries(storage):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        links = _study_links(run, summary.study_name)
        for frozen in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            owner = frozen.user_attrs.get("mlci_trial", links.get(frozen.number))
            trial = run.trial(owner) if isinstance(owner, int) else None
            value = None
            proposed = trial is not None and (trial.hparams_path.exists() or trial.state_path.exists())
            if proposed:
                if trial.has_metrics():
                    with contextlib.suppress(MlciError):
                        value = trial.metrics().value
                if value is None and trial.state().status in ("pending", "running"):
                    continue
            closed += 1
            if dry_run:
                continue
            if value is not None:
                study.tell(frozen.number, value)
            elif proposed:
                study.tell(frozen.number, state=optuna.trial.TrialState.FAIL)
            else:
                study.tell(frozen.number, state=optuna.trial.TrialState.FAIL)
                study.enqueue_trial(frozen.params, user_attrs={"re_proposed_from": frozen.number})
    return closed


# ----------------------------------------------------------------------------- the monitor


@dataclass
class MonitorResult:
    passes: int = 0
    watched: set = field(default_factory=set)
    restarted: list[tuple[str, int, str]] = field(default_factory=list)  # (run, trial, reason)
    failed: list[tuple[str, int, str]] = field(default_factory=list)
    succeeded: list[tuple[str, int]] = field(default_factory=list)
    study_trials_closed: int = 0

    @property
    def exit_code(self) -> int:
        return EXIT_TRIAL_FAILED if self.failed else 0


class _Wake:
    """Wakes the monitor's wait: a Docker event, a stop request, or a watched process ending (pidfd)."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        os.set_blocking(self.write_fd, False)
        self.pidfds: dict[int, int] = {}

    def ring(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self.write_fd, b"x")

    def watch_pids(self, pids: set[int]) -> None:
        for pid in set(self.pidfds) - pids:
            os.close(self.pidfds.pop(pid))
        for pid in pids - set(self.pidfds):
            with contextlib.suppress(OSError, AttributeError):
                self.pidfds[pid] = os.pidfd_open(pid)

    def wait(self, timeout: float) -> None:
        ready, _, _ = select.select([self.read_fd, *self.pidfds.values()], [], [], timeout)
        if self.read_fd in ready:
            with contextlib.suppress(OSError):
                while os.read(self.read_fd, 4096):
                    pass

    def close(self) -> None:
        self.watch_pids(set())
        os.close(self.read_fd)
        os.close(self.write_fd)


class DockerEvents(threading.Thread):
    """Follows the engine's `die`/`oom` events for containers labelled by mlci, and rings the monitor."""

    def __init__(self, runner: Runner, wake: _Wake, seen: "queue.Queue[dict]"):
        super().__init__(name="mlci-docker-events", daemon=True)
        self.runner, self.wake, self.seen = runner, wake, seen
        self.stream = None
        self.failed: str | None = None

    def run(self) -> None:
        try:
            import docker

            from mlci.runners.docker import LABEL_RUN

            # A client of its own: the runner's is busy with requests of the monitor's thread meanwhile.
            client = docker.from_env()
            self.stream = client.events(decode=True, filters={
                "type": "container", "event": ["die", "oom"], "label": [LABEL_RUN]})
            for event in self.stream:
                event["_received"] = time.time()
                self.seen.put(event)
                self.wake.ring()
        except Exception as exc:  # the engine went away: the monitor keeps polling
            self.failed = f"{type(exc).__name__}: {exc}"
            self.wake.ring()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if self.stream is not None:
                self.stream.close()


class Monitor:
    """Watches the running trials of a store (or of one run) and heals the dead ones."""

    def __init__(self, store: RunStore, run_id: str | None = None, *, events: Any = None,
                 runner_factory: Callable[[str], Runner] = get_runner, poll: float | None = None,
                 stale_after: float | None = None, docker_events: bool = True):
        self.store, self.run_id, self.events = store, run_id, events
        if run_id is not None:
            store.run(run_id)  # an unknown run is a usage error now, not a silent watch of nothing
        self.runner_factory = runner_factory
        self.poll, self.stale_after = poll, stale_after
        self.runners: dict[str, Runner | None] = {}
        self.wake = _Wake()
        self.stopping = threading.Event()
        self.docker_seen: "queue.Queue[dict]" = queue.Queue()
        self.docker_thread: DockerEvents | None = None
        self.want_docker_events = docker_events
        self.result = MonitorResult()

    def stop(self) -> None:
        """Safe from a signal handler: the loop ends after the pass it is in."""
        self.stopping.set()
        self.wake.ring()

    def runner(self, name: str | None) -> Runner | None:
        name = name or "local"
        if name not in self.runners:
            try:
                self.runners[name] = self.runner_factory(name)
            except MlciError as err:
                _notice(self.events, f"warning: runner {name} unavailable ({err.one_line()}); its trials wait")
                self.runners[name] = None
            if name == "docker" and self.runners[name] is not None and self.want_docker_events:
                self.docker_thread = DockerEvents(self.runners[name], self.wake, self.docker_seen)
                self.docker_thread.start()
        return self.runners[name]

    def runs(self) -> list[Run]:
        return [self.store.run(self.run_id)] if self.run_id else self.store.runs()

    def check_once(self) -> MonitorResult:
        """One pass over every running trial: heal the dead ones."""
        self.result.passes += 1
        pids: set[int] = set()
        for run in self.runs():
            config = None
            for trial in run.trials():
                try:
                    state = trial.state()
                except MlciError as err:
                    _notice(self.events, f"warning: {err.one_line()}")
                    continue
                if state.status != "running":
                    continue
                if config is None:
                    from mlci.tuning.tweak import run_config

                    config = run_config(run)
                self.result.watched.add((run.id, trial.number))
                handle = self._check_trial(run, trial, state, config)
                if handle is not None and handle.isdigit():
                    pids.add(int(handle))
            if run.study_path.exists():
                self._close_study(run)
        self.wake.watch_pids(pids)
        return self.result

    def _check_trial(self, run: Run, trial: Trial, state: TrialState, config: Config) -> str | None:
        """Returns the handle of the trial's live process or container, None once it is closed."""
        runner = self.runner(state.runner)
        handle = handle_of(state)
        if runner is None:
            return handle
        stale_after = self.stale_after if self.stale_after is not None else config.monitor.heartbeat_timeout
        try:
            status, hung = inspect(trial, runner, handle, state, stale_after)
            if not status.finished and not hung:
                return handle
            verdict = settle(run, trial, runner, config, handle, status, events=self.events, hung=hung,
                             blocking=False, update_best=self._run_is_free(run))
        except MlciError as err:
            _notice(self.events, f"warning: trial {trial.number} of run {run.id}: {err.one_line()}; trying again")
            return handle
        except Exception as exc:  # noqa: BLE001  one trial's trouble (an engine's 409) must not end the watch
            _notice(self.events, f"warning: trial {trial.number} of run {run.id}: {type(exc).__name__}: "
                                 f"{' '.join(str(exc).split())[:300]}; trying again")
            return handle
        if verdict.action == "restarted":
            self.result.restarted.append((run.id, trial.number, verdict.restart.reason if verdict.restart else ""))
        elif verdict.action == "failed":
            self.result.failed.append((run.id, trial.number, verdict.state.reason or ""))
        elif verdict.action == "succeeded":
            self.result.succeeded.append((run.id, trial.number))
        return verdict.handle if verdict.action in ("restarted", "adopted", "busy") else None

    @staticmethod
    def _run_is_free(run: Run) -> bool:
        """The best trial is updated here only when no orchestrator holds the run (it does that itself)."""
        try:
            with run.lock():
                return True
        except MlciError:
            return False

    def _close_study(self, run: Run) -> None:
        if not close_abandoned_study_trials(run, dry_run=True):
            return  # the run's lock is taken only when there is something to close: `mlci run` may want it
        try:
            with run.lock():  # an orchestrator holding the run may be between ask and tell
                closed = close_abandoned_study_trials(run)
        except MlciError:
            return
        if closed:
            self.result.study_trials_closed += closed
            _notice(self.events, f"run {run.id}: {closed} Optuna trial(s) left RUNNING by a stopped orchestrator closed")

    def watch(self, once: bool = False) -> MonitorResult:
        """Check and heal; with once=False keep going until stop() (SIGTERM/SIGINT in the CLI)."""
        try:
            while True:
                self.check_once()
                if once or self.stopping.is_set():
                    return self.result
                poll = self.poll or self._default_poll()
                self.wake.wait(poll)
                while not self.docker_seen.empty():
                    _emit(self.events, "docker_event", self.docker_seen.get_nowait())
                if self.docker_thread is not None and self.docker_thread.failed:
                    _notice(self.events, f"warning: Docker's event stream ended ({self.docker_thread.failed}); "
                                         f"polling every {poll:g}s instead")
                    self.docker_thread, self.want_docker_events = None, False
                if self.stopping.is_set():
                    return self.result
        finally:
            self.close()

    def _default_poll(self) -> float:
        for run in self.runs()[-1:]:
            with contextlib.suppress(MlciError):
                return float(run.record().config.get("monitor", {}).get("poll", 1.0))
        return 1.0

    def close(self) -> None:
        if self.docker_thread is not None:
            self.docker_thread.close()
        self.wake.close()


def monitor(store: RunStore, run_id: str | None = None, *, once: bool = False, events: Any = None,
            runner_factory: Callable[[str], Runner] = get_runner, poll: float | None = None,
            stale_after: float | None = None) -> MonitorResult:
    """Watch the running trials of every run (or `run_id`) and restart the dead ones from their checkpoint."""
    return Monitor(store, run_id, events=events, runner_factory=runner_factory, poll=poll,
                   stale_after=stale_after).watch(once=once)
