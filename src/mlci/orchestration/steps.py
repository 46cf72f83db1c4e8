"""The Jenkins jobs' steps, one per build (launch, wait, tweak, status): each asks or tells the run oracle.

The CLI commands and the Jenkinsfile call these; `mlci run` drives the same oracle in one process, so the
two paths cannot drift apart.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from mlci.core.errors import UsageError
from mlci.core.states import TrialStatus
from mlci.core.store import Run, Trial, TrialState
from mlci.orchestration.oracle import Action, CheckResult, Outcome, RunOracle, Step

if TYPE_CHECKING:
    from mlci.runners import Runner

# The steps that read (status, check, tweak) import no runner and no lifecycle: `mlci status --json`, which
# Jenkins calls on every build, starts without them (bench/startup.py). launch_next and wait_for import them.


@dataclass
class Launched:
    """What job 2 did: started `trial` (follow it with `handle`), or nothing because the run has ended."""

    trial: Trial | None
    handle: str | None
    runner: Runner | None
    outcome: Outcome


def launch_next(run: Run, runner_name: str | None = None, notice: Callable[[str], None] | None = None) -> Launched:
    """Job 2: start the trial the oracle names (trial 0, the baseline, first)."""
    from mlci.orchestration.lifecycle import launch_trial
    from mlci.runners import get_runner

    oracle = RunOracle(run)
    with run.lock(wait=True):
        step = oracle.ask()
        if step.action is Action.PROPOSE:
            raise UsageError(f"run {run.id} has no proposed trial to launch",
                             hint=f"propose one first: `mlci tweak --run {run.id}` (job 4)")
        if step.action is Action.DONE:
            oracle.finish(step)
            return Launched(None, None, None, oracle.outcome())
        runner = get_runner(runner_name or oracle.config.runner, notice=notice)
        oracle.start()
        handle = launch_trial(run, step.trial, runner, oracle.config)
    return Launched(step.trial, handle, runner, oracle.outcome())


def trial_to_wait(run: Run, trial_number: int | None = None) -> Trial:
    """The trial job 3 waits for: the one named, else the latest."""
    trials = run.trials()
    if not trials:
        raise UsageError(f"run {run.id} has no trial", hint=f"start one with `mlci launch --run {run.id}`")
    trial = run.trial(trial_number) if trial_number is not None else trials[-1]
    if not trial.dir.is_dir():
        raise UsageError(f"run {run.id} has no trial {trial.number}",
                         hint=f"its trials are {', '.join(str(t.number) for t in trials)}")
    return trial


def wait_for(run: Run, trial_number: int | None = None, events: Any = None) -> tuple[Trial, TrialState]:
    """Job 3: follow a trial to its end (restarting it from its checkpoint if it dies); the oracle is told."""
    from mlci.orchestration.lifecycle import follow, handle_of
    from mlci.runners import get_runner

    oracle = RunOracle(run)
    trial = trial_to_wait(run, trial_number)
    state = trial.state()
    if TrialStatus(state.status).is_finished():
        oracle.tell(trial)  # told already when it ended; telling again is harmless and heals a stopped teller
        return trial, state
    if state.status != TrialStatus.RUNNING or not state.runner:
        raise UsageError(f"trial {trial.number} of run {run.id} is not running",
                         hint=f"start it with `mlci launch --run {run.id}`")
    return trial, follow(run, trial, get_runner(state.runner), handle_of(state), oracle.config, events)


def tweak_next(run: Run) -> Step:
    """Job 4: the next trial's proposal (an untrained proposal is returned again), or DONE with why."""
    oracle = RunOracle(run)
    with run.lock(wait=True):
        return oracle.next()


def status_facts(run: Run) -> dict[str, Any]:
    """What `mlci status --json` prints and job 5 decides with: the oracle's verdict, nothing recomputed."""
    oracle = RunOracle(run)
    outcome = oracle.outcome()
    record = run.record()
    spent, why = oracle.budget()
    nxt = outcome.next
    return {
        "run_id": run.id, "status": str(outcome.status), "finished": outcome.finished,
        "reason": str(outcome.reason) if outcome.reason else None, "event": outcome.event,
        "message": outcome.message, "metric": outcome.objective.metric, "threshold": outcome.objective.threshold,
        "best_trial": outcome.best_trial, "best_value": outcome.best_value, "trials": outcome.trials,
        "trials_done": outcome.trials_done, "max_trials": oracle.config.max_trials,
        "budget_left": spent is None, "budget_note": why, "next": str(nxt.action),
        "next_trial": nxt.trial.number if nxt.action is Action.LAUNCH and nxt.trial is not None else None,
        "model": record.model_file, "commit": record.commit, "finished_at": outcome.finished_at,
    }


def check_trial(run: Run, trial_number: int | None = None) -> CheckResult:
    """Job 4's question: did the trial reach the threshold?"""
    return RunOracle(run).check(trial_number)

