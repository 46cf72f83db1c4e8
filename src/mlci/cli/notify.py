"""`mlci notify`: announce a run's outcome (email, webhook) through the run's outbox.

Also `--flush` to resend what is still pending.
"""
from __future__ import annotations

from pathlib import Path

import click

from mlci.cli._common import TRIAL_NUMBER, handle_errors, home_option, store_for


@click.command("notify", epilog="\b\nExit codes: 0 sent (or console only: no [notify] channel), 2 usage/config,\n"
                               "8 not delivered after the retries (kept in the outbox; `mlci notify --flush`).")
@click.option("--run", "run_id", metavar="ID", help="The run to announce (required unless --flush).")
@click.option("--event", type=click.Choice(["success", "budget-exhausted", "trial-failed", "pipeline-error"]),
              help="What to announce [default: from the run's status: met, exhausted, failed].")
@click.option("--trial", type=TRIAL_NUMBER, default=None, help="With --event trial-failed: which trial [default: the last failed].")
@click.option("--flush", is_flag=True, help="Send what is pending in the outbox (of --run, or of every run).")
@click.option("--resend-unconfirmed", is_flag=True,
              help="With --flush: also send again what went to the server without a reply (it may arrive twice).")
@click.option("--if-ended", is_flag=True,
              help="Announce the run's outcome only if it has ended; a run that goes on is left alone (exit 0).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="A mlci.toml whose [notify] to use [default: the config stored with the run].")
@home_option
@handle_errors
def notify_command(run_id: str | None, event: str | None, trial: int | None, flush: bool, resend_unconfirmed: bool,
                   if_ended: bool, config_file: Path | None, home: Path | None) -> None:
    """Announce a run's outcome by email (SMTP) and webhook, through the run's outbox/.

    Every message is written to runs/<id>/outbox/ first, then sent, then marked sent: the same
    event is sent at most once (a message whose reply was lost is not resent unless asked; see
    docs/notifications.md). The SMTP password comes only from MLCI_SMTP_PASSWORD."""
    from mlci.integrations import notify as notifying
    from mlci.core.config import load_config

    if not flush and not run_id:
        raise click.UsageError("pass --run ID (or --flush to send what is pending)")
    if flush and (event or trial is not None or if_ended):
        raise click.UsageError("--flush sends what is pending; it takes no --event, --trial or --if-ended")
    if resend_unconfirmed and not flush:
        raise click.UsageError("--resend-unconfirmed goes with --flush")
    if if_ended and event:
        raise click.UsageError("--if-ended announces the event the run ended with; it takes no --event")
    store = store_for(home)
    run = store.run(run_id) if run_id else None
    config = load_config(None, config_file)[0].notify if config_file else None

    def echo(line: str) -> None:
        click.echo(line, err=True)

    if flush:
        result = notifying.flush(run or store, config=config, echo=echo, resend_unconfirmed=resend_unconfirmed)
    elif if_ended and not run.record().status.is_finished():
        echo(f"notify: run {run.id} has not ended ({run.record().status}); nothing to announce")
        return
    else:
        result = notifying.announce(run, config or notifying.run_config(run), echo=echo, event=event, trial=trial)
    for path in result.messages:
        click.echo(f"OUTBOX={path}")
