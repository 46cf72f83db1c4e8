"""A worker of a farm (`mlci worker --run ID`): joins a run and trains the trials the oracle hands out.

Any number of workers, on any hosts that see the run store (a shared mount) and the run's coordination
backend (PostgreSQL when `storage` is a server), drive one run: under the oracle's guard a worker asks for
the next step and claims its trial; it trains it, beating its heartbeat; it releases it when it ended. A
trial whose worker went silent (its host died) is free again: the next worker that asks takes it over and
restarts it from its last checkpoint on the shared store. The oracle alone decides; workers only ask.
`mlci run --parallel N` is the same loop: N workers of one process (`work_together`).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from mlci.core.states import TrialStatus
from mlci.core.store import Run, Trial
from mlci.orchestration.coordination import Coordination, coordination_for, worker_id
from mlci.orchestration.lifecycle import (Events, QuietEvents, adopt, checkpoint_epoch, failed_on, follow, handle_of,
                                          start_trial, trial_lock)
from mlci.orchestration.oracle import Action, RunOracle, Step
from mlci.runners import Runner, get_runner


@dataclass
class WorkerResult:
    run: Run
    worker: str
    step: Step  # the oracle's last answer: DONE, with the run's reason
    trained: list[int] = field(default_factory=list)  # trials this worker trained (or took over) to their end
    taken_over: list[int] = field(default_factory=list)  # of those, trials taken from a silent worker

    @property
    def exit_code(self) -> int:
        return self.step.exit_code


class Heartbeat:
    """A thread that keeps the worker's claims alive every `interval` seconds."""

    def __init__(self, coordination: Coordination, worker: str, interval: float):
        self.coordination, self.worker, self.interval = coordination, worker, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="mlci-heartbeat", daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.coordination.beat(self.worker)
            except Exception:  # noqa: BLE001  a missed beat is retried; a long outage frees the claims
                pass

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 5)


def _take_over(run: Run, trial: Trial, runner: Runner, config, events: Events) -> str | None:
    """A trial claimed from a silent worker. Its process is looked for here: alive on this machine (a restarted
    `mlci run`, a worker of the same host), it is followed; gone (its host was lost), it restarts here from its
    checkpoint (settle records the restart, with the epoch it resumes from). None if it had already ended."""
    state = trial.state()
    if state.status != TrialStatus.RUNNING:
        return start_trial(run, RunOracle(run, config), trial, runner, config, events)
    events.notice(f"trial {trial.number}: its worker's heartbeat stopped; taking it over")
    return adopt(run, trial, runner, config, events, note="its worker's host was lost")


def hand_back(trial: Trial, runner: Runner, why: str, events: Events | None = None) -> bool:
    """This worker stops (SIGTERM, Ctrl-C): its trial stops with it and is pending again, so that the next worker
    that asks resumes it from its checkpoint at once, instead of waiting for the heartbeat to go stale while
    the trial trains on unwatched. False if the trial had already ended (or another process decided)."""
    with trial_lock(trial):
        state = trial.state()
        handle = handle_of(state)
        if state.status != TrialStatus.RUNNING:
            return False
        if handle:
            watcher = runner if not state.runner or state.runner == runner.name else get_runner(state.runner)
            watcher.kill(handle)
        epoch = checkpoint_epoch(trial)
        resumes = "the start" if epoch is None else f"epoch {epoch}"
        trial.write_state(state.model_copy(update={
            "status": TrialStatus.PENDING, "pid": None, "container_id": None,
            "reason": f"its worker stopped ({why}); the next worker resumes it from {resumes}"}))
    if events is not None:
        events.notice(f"trial {trial.number}: stopped with this worker ({why}); pending again, to resume from {resumes}")
    return True


def _idle(oracle: RunOracle, coordination: Coordination, poll: float, stop: threading.Event | None) -> None:
    """Wait while the run is done but other workers still train, until a trial may be free to claim (its worker
    went silent) or none trains any more. Looks without the guard (it only reads), so that idle workers do not
    queue in front of the workers that decide."""
    while stop is None or not stop.is_set():
        time.sleep(poll)
        live = coordination.live()
        if not live or oracle.ask(busy=live, create=False).action is not Action.DONE:
            return


def work(run: Run, *, runner: Runner | None = None, runner_name: str | None = None, events: Events | None = None,
         worker: str | None = None, heartbeat: float = 2.0, stale_after: float | None = None, poll: float = 0.5,
         stop: threading.Event | None = None) -> WorkerResult:
    """Train the run's trials until the oracle says DONE and no live worker still trains one.

    `stop`: set by a sibling worker of the same process that hit an error: claim no further trial.
    Interrupted (SIGTERM, Ctrl-C) while training, the worker stops its trial and hands it back (`hand_back`).
    """
    events = events or QuietEvents()
    config = run.record().config
    runner = runner or get_runner(runner_name or config.runner, notice=events.notice)
    coordination = coordination_for(run, config.storage)
    coordination.stale_after = stale_after if stale_after is not None else max(3 * heartbeat, 3.0)
    oracle = RunOracle(run, config, coordination=coordination)
    me = worker or worker_id()
    result = WorkerResult(run, me, Step(Action.DONE))
    with Heartbeat(coordination, me, heartbeat):
        while stop is None or not stop.is_set():
            with oracle.guard():
                busy = coordination.live()
                step = oracle.next(busy=busy)
                takeovers = coordination.claim(step.trial.number, me) if step.action is Action.LAUNCH else None
            if step.action is Action.DONE:
                result.step = step
                if not busy:
                    return result
                _idle(oracle, coordination, poll, stop)  # others still train: stay to take over a trial whose host dies
                continue
            if takeovers is None:  # a live worker holds it (cannot happen under the guard; never train twice)
                continue
            trial = step.trial
            try:
                if takeovers:
                    handle = _take_over(run, trial, runner, config, events)
                    result.taken_over.append(trial.number)
                else:
                    handle = start_trial(run, oracle, trial, runner, config, events)
                state = follow(run, trial, runner, handle, config, events) if handle else trial.state()
            except KeyboardInterrupt:
                hand_back(trial, runner, "interrupted", events)
                raise
            finally:
                coordination.release(trial.number, me)
            failed_on(oracle, trial, state, events)
            result.trained.append(trial.number)
    return result


def work_together(run: Run, workers: int, *, runner: Runner, events: Events | None = None,
                  heartbeat: float = 2.0) -> list[WorkerResult]:
    """`mlci run --parallel N`: N workers of this process, each the farm's loop, on one run.

    Threads, not processes: they share the runner (a warm worker forks every local trial) and the events the
    console draws. They are daemons: Ctrl-C ends mlci at once, the trials train on, and their claims are given
    up so that the next `mlci run` follows them at once. The first error stops the others from claiming more
    and is raised once every worker has ended.
    """
    coordination = coordination_for(run, run.record().config.storage)
    stop = threading.Event()
    results: list[WorkerResult] = []
    errors: list[BaseException] = []
    names = [worker_id() for _ in range(workers)]

    def one(name: str) -> None:
        try:
            results.append(work(run, runner=runner, events=events, worker=name, heartbeat=heartbeat, stop=stop))
        except BaseException as exc:  # handed to the main thread, which raises it
            errors.append(exc)
            stop.set()

    threads = [threading.Thread(target=one, args=(name,), name=f"mlci-worker-{i}", daemon=True)
               for i, name in enumerate(names)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(timeout=0.5)  # a timeout keeps Ctrl-C deliverable to this thread
    except KeyboardInterrupt:
        stop.set()
        for claim in coordination.claims():
            if claim.worker in names and not claim.done:
                coordination.release(claim.trial, claim.worker)
        raise
    if errors:
        raise errors[0]
    return results
