"""`mlci worker --run ID`: join a run from any host that sees its run store and its database, and train
trials until the oracle says the run is done (one line per trial on stderr; the exit code is the run's)."""
from __future__ import annotations

import sys

import click

from mlci.cli._common import SEE_EXIT_HELP, _install_signal_handlers, _open, handle_errors, home_option, run_option


class WorkerEcho:
    """What the worker does, one line each on stderr (a Jenkins agent's build log keeps it)."""

    def __init__(self, name: str):
        self.name = name

    def notice(self, text: str) -> None:
        click.echo(f"mlci worker {self.name}: {text}", err=True)

    def trial_started(self, trial, hparams) -> None:
        self.notice(f"trial {trial.number}: {hparams.proposed_by}" + (f" ({hparams.change})" if hparams.change else ""))

    def trial_progress(self, trial, epoch, epochs, value) -> None:
        pass

    def trial_finished(self, trial, metrics, state) -> None:
        outcome = f"{metrics.metric} {metrics.value:.4f}" if metrics is not None else (state.reason or state.status)
        self.notice(f"trial {trial.number} {state.status}: {outcome}")


@click.command("worker", epilog=SEE_EXIT_HELP)
@run_option
@home_option
@click.option("--runner", type=click.Choice(["local", "docker", "auto"]), help="Where trials train [config: runner].")
@click.option("--heartbeat", type=click.FloatRange(min=0.1, max=300), default=2.0, show_default=True,
              help="Seconds between this worker's heartbeats.")
@click.option("--stale-after", type=click.FloatRange(min=0.3, max=3600), default=None,
              help="Seconds without a heartbeat after which another worker takes a trial over [default: 3 beats].")
@click.option("--name", help="This worker's host name in the claims [env MLCI_WORKER_HOST; default: the hostname].")
@handle_errors
def worker_command(run_id, home, runner, heartbeat, stale_after, name):
    """Join run ID as one more worker: claim the next trial the oracle hands out, train it, and go on until
    the run is done. Start any number, on any hosts that mount the run store and reach the run's
    `storage` database (credentials from the environment: PGPASSWORD or ~/.pgpass)."""
    from mlci.orchestration.coordination import worker_id
    from mlci.orchestration.farm import work

    _install_signal_handlers()
    _, run = _open(home, run_id)
    me = worker_id(name)
    echo = WorkerEcho(me)
    result = work(run, runner_name=runner, events=echo, worker=me, heartbeat=heartbeat, stale_after=stale_after)
    echo.notice(f"trained {len(result.trained)} trial(s) {result.trained}; run {run.id}: {result.step.message}")
    sys.exit(result.exit_code)
