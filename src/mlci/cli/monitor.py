"""`mlci monitor`: the watchdog that restarts dead or hung trials from their last checkpoint.

MonitorEcho writes what it did, one line each on stderr.
"""
from __future__ import annotations

import sys
from pathlib import Path

import click

from mlci.cli._common import handle_errors, home_option, store_for


class MonitorEcho:
    """What the monitor did, one line each on stderr (Jenkins keeps it in the build log)."""

    def notice(self, text: str) -> None:
        click.echo(f"mlci: {text}", err=True)

    def trial_died(self, trial, status, detected_at) -> None:
        click.echo(f"mlci: run {trial.run.id} trial {trial.number}: {status.reason or status.state}", err=True)

    def docker_event(self, event: dict) -> None:
        labels = (event.get("Actor") or {}).get("Attributes") or {}
        code = labels.get("exitCode")
        trial = labels.get("mlci.trial")
        if trial == "standby":  # a standby keeps its label; hand-over renamed it mlci-RUN-TRIAL
            trial = (labels.get("name") or "").rsplit("-", 1)[-1]
        click.echo(f"mlci: docker: container of run {labels.get('mlci.run')} trial {trial}: "
                   f"{event.get('status') or event.get('Action')}" + (f" (exit code {code})" if code else ""), err=True)

    def trial_finished(self, trial, metrics, state) -> None:
        outcome = f"{metrics.metric} {metrics.value:.4f}" if metrics is not None else (state.reason or state.status)
        click.echo(f"mlci: run {trial.run.id} trial {trial.number} {state.status}: {outcome}", err=True)


@click.command("monitor", epilog="\b\nExit codes: 0 nothing failed (SIGTERM/SIGINT end the watch cleanly with 0),\n"
                                "2 usage, 5 a trial was closed as failed (crash loop), 130 --once interrupted.")
@click.option("--run", "run_id", metavar="ID", help="Watch this run only [default: every run in the store].")
@click.option("--once", is_flag=True, help="Check and act once, then exit (for a Jenkins job on a timer).")
@click.option("--poll", type=click.FloatRange(min=0.05, max=60), default=None,
              help="Seconds between checks when no event arrives [config: monitor.poll, 1].")
@click.option("--stale-after", type=click.FloatRange(min=2), default=None,
              help="A trial whose heartbeat is older is hung: killed and restarted [config: monitor.heartbeat_timeout].")
@home_option
@handle_errors
def monitor_command(run_id: str | None, once: bool, poll: float | None, stale_after: float | None,
                    home: Path | None) -> None:
    """Job 6: restart dead training processes and containers from their last checkpoint.

    Watches the running trials of every run (Docker's die/oom events, local processes, heartbeats);
    a killed, OOM-killed or crashed trial is relaunched and resumes from its checkpoint, up to
    max_restarts; a trial left running by a killed `mlci run` is resumed the same way."""
    import signal

    from mlci.orchestration.monitor import Monitor

    watcher = Monitor(store_for(home), run_id, events=MonitorEcho(), poll=poll, stale_after=stale_after)
    if not once:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: watcher.stop())
        click.echo(f"mlci: monitoring {'run ' + run_id if run_id else 'every run in ' + str(watcher.store.home)}"
                   "; stop with Ctrl-C or SIGTERM", err=True)
    result = watcher.watch(once=once)
    click.echo(f"watched {len(result.watched)} running trial(s) in {result.passes} pass(es): "
               f"{len(result.restarted)} restarted, {len(result.succeeded)} finished, {len(result.failed)} failed")
    sys.exit(result.exit_code)
