"""Job 6, the monitor: watches the running trials of a store and heals the dead ones.

A dead process or container is settled by the trial lifecycle (restarted from its checkpoint, or closed
and told to the oracle); the monitor only finds them: Docker events, process handles, heartbeats.
"""
from __future__ import annotations

import contextlib
import os
import queue
import select
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from mlci.core.config import Config
from mlci.core.errors import EXIT_TRIAL_FAILED, MlciError
from mlci.core.states import TrialStatus
from mlci.core.store import Run, RunStore, Trial, TrialState
from mlci.orchestration.lifecycle import emit, handle_of, inspect, notice, settle
from mlci.orchestration.oracle import RunOracle
from mlci.runners import Runner, get_runner


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
                if value is None and RunOracle.trial_status(trial).is_open():
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
            from mlci.runners.docker_standby import unused_standby_event

            # A client of its own: the runner's is busy with requests of the monitor's thread meanwhile.
            client = docker.from_env()
            self.stream = client.events(decode=True, filters={
                "type": "container", "event": ["die", "oom"], "label": [LABEL_RUN]})
            for event in self.stream:
                if unused_standby_event(event):
                    continue  # a standby removed unused at its run's end: no trial's container
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
                notice(self.events, f"warning: runner {name} unavailable ({err.one_line()}); its trials wait")
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
                    notice(self.events, f"warning: {err.one_line()}")
                    continue
                if state.status != TrialStatus.RUNNING:
                    continue
                if config is None:
                    config = run.record().config
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
            status, hung = inspect(trial, runner, handle, state, stale_after, config)
            if not status.finished and not hung:
                return handle
            verdict = settle(run, trial, runner, config, handle, status, events=self.events, hung=hung,
                             blocking=False, tell=self._run_is_free(run))
        except MlciError as err:
            notice(self.events, f"warning: trial {trial.number} of run {run.id}: {err.one_line()}; trying again")
            return handle
        except Exception as exc:  # noqa: BLE001  one trial's trouble (an engine's 409) must not end the watch
            notice(self.events, f"warning: trial {trial.number} of run {run.id}: {type(exc).__name__}: "
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
            notice(self.events, f"run {run.id}: {closed} Optuna trial(s) left RUNNING by a stopped orchestrator closed")

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
                    emit(self.events, "docker_event", self.docker_seen.get_nowait())
                if self.docker_thread is not None and self.docker_thread.failed:
                    notice(self.events, f"warning: Docker's event stream ended ({self.docker_thread.failed}); "
                                         f"polling every {poll:g}s instead")
                    self.docker_thread, self.want_docker_events = None, False
                if self.stopping.is_set():
                    return self.result
        finally:
            self.close()

    def _default_poll(self) -> float:
        for run in self.runs()[-1:]:
            with contextlib.suppress(MlciError):
                return run.record().config.monitor.poll
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
