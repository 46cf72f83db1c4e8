"""A worker of a farm (`mlci worker --run ID`): joins a run and trains the trials the oracle hands out.

Any number of workers, on any hosts that see the run store (a shared mount) and the run's coordination
backend (PostgreSQL when `storage` is a server), drive one run: under the oracle's guard a worker asks for
the next step and claims its trial; it trains it, beating its heartbeat; it releases it when it ended. A
trial whose worker went silent (its host died) is free again: the next worker that asks takes it over and
restarts it from its last checkpoint on the shared store. The oracle alone decides; workers only ask.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from mlci.core.states import TrialStatus
from mlci.core.store import Run, Trial
from mlci.orchestration.coordination import Coordination, coordination_for, worker_id
from mlci.orchestration.lifecycle import follow, handle_of, settle
from mlci.orchestration.oracle import Action, RunOracle, Step
from mlci.orchestration.pipeline import Events, QuietEvents, start_trial
from mlci.runners import Runner, Status, get_runner


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
    """A trial claimed from a silent worker: its process is on a lost host, so it is restarted here from its
    checkpoint (settle records the restart, with the epoch it resumes from); None if it had already ended."""
    state = trial.state()
    if state.status != TrialStatus.RUNNING:
        return start_trial(run, RunOracle(run, config), trial, runner, config, events)
    handle = handle_of(state)
    events.notice(f"trial {trial.number}: its worker's heartbeat stopped; taking it over")
    verdict = settle(run, trial, runner, config, handle, Status("missing", handle or "", reason="its host was lost"),
                     events=events, note="its worker's host was lost")
    return verdict.handle if verdict.action in ("restarted", "adopted") else None


def work(run: Run, *, runner_name: str | None = None, events: Events | None = None, worker: str | None = None,
         heartbeat: float = 2.0, stale_after: float | None = None, poll: float = 0.5) -> WorkerResult:
    """Train the run's trials until the oracle says DONE and no live worker still trains one."""
    events = events or QuietEvents()
    config = run.record().config
    runner = get_runner(runner_name or config.runner, notice=events.notice)
    coordination = coordination_for(run, config.storage)
    coordination.stale_after = stale_after if stale_after is not None else max(3 * heartbeat, 3.0)
    oracle = RunOracle(run, config, coordination=coordination)
    me = worker or worker_id()
    result = WorkerResult(run, me, Step(Action.DONE))
    with Heartbeat(coordination, me, heartbeat):
        while True:
            with oracle.guard():
                busy = coordination.live()
                step = oracle.next(busy=busy)
                takeovers = coordination.claim(step.trial.number, me) if step.action is Action.LAUNCH else None
            if step.action is Action.DONE:
                result.step = step
                if not busy:
                    return result
                time.sleep(poll)  # others still train: stay to take over a trial whose host dies
                continue
            if takeovers is None:  # a live worker holds it (cannot happen under the guard; never train twice)
                continue
            trial = step.trial
            if takeovers:
                handle = _take_over(run, trial, runner, config, events)
                result.taken_over.append(trial.number)
            else:
                handle = start_trial(run, oracle, trial, runner, config, events)
            try:
                if handle:
                    follow(run, trial, runner, handle, config, events)
            finally:
                coordination.release(trial.number, me)
            result.trained.append(trial.number)
