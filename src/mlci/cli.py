"""The command line: the only module that knows about the terminal.

Each command parses options, calls one function of the core, and turns MlciError into one
line on stderr and its documented exit code.
"""
from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import click
from rich.console import Console

from mlci import __version__
from mlci.errors import EXIT_CODES, EXIT_INTERRUPTED, MlciError
from mlci.store import RunStore

console = Console(stderr=True, highlight=False)
out = Console(highlight=False)

EXIT_HELP = "\b\nExit codes:\n" + "\n".join(f"  {code:>3}  {text}" for code, text in EXIT_CODES.items())


def handle_errors(func):
    """MlciError -> one line on stderr + its exit code; Ctrl-C -> 130; anything else is a bug."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except MlciError as err:
            click.echo(f"mlci: error: {err.one_line()}", err=True)
            sys.exit(err.exit_code)
        except KeyboardInterrupt:
            click.echo("mlci: interrupted; the run store is consistent, run the same command again to continue",
                       err=True)
            sys.exit(EXIT_INTERRUPTED)

    return wrapper


def home_option(func):
    return click.option("--home", type=click.Path(file_okay=False, path_type=Path), envvar="MLCI_HOME",
                        default=None, help="Run store folder [env MLCI_HOME; default ./.mlci].")(func)


def store_for(home: Path | None) -> RunStore:
    return RunStore(home)


@click.group(epilog=EXIT_HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mlci")
def main() -> None:
    """mlci: detect a model's kind, train it, check the metric, tweak and retrain until the
    threshold, notify, and heal crashed trials. `mlci run MODEL_FILE` does it all in one process."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


# ============================================================================ pipeline commands
# (run, train, check, tweak, launch, wait, history, report, fetch) live below this line.


# ============================================================================ detect commands (issue 3)


# ============================================================================ notify commands (issue 7)


@main.command("notify", epilog="\b\nExit codes: 0 sent (or console only: no [notify] channel), 2 usage/config,\n"
                               "8 not delivered after the retries (kept in the outbox; `mlci notify --flush`).")
@click.option("--run", "run_id", metavar="ID", help="The run to announce (required unless --flush).")
@click.option("--event", type=click.Choice(["success", "budget-exhausted", "trial-failed", "pipeline-error"]),
              help="What to announce [default: from the run's status: met, exhausted, failed].")
@click.option("--trial", type=int, default=None, help="With --event trial-failed: which trial [default: the last failed].")
@click.option("--flush", is_flag=True, help="Send what is pending in the outbox (of --run, or of every run).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="A mlci.toml whose [notify] to use [default: the config stored with the run].")
@home_option
@handle_errors
def notify_command(run_id: str | None, event: str | None, trial: int | None, flush: bool,
                   config_file: Path | None, home: Path | None) -> None:
    """Announce a run's outcome by email (SMTP) and webhook, through the run's outbox/.

    Every message is written to runs/<id>/outbox/ first, then sent, then marked sent: the same
    event is never sent twice. The SMTP password comes only from MLCI_SMTP_PASSWORD."""
    from mlci import notify as notifying
    from mlci.config import load_config

    if not flush and not run_id:
        raise click.UsageError("pass --run ID (or --flush to send what is pending)")
    if flush and (event or trial is not None):
        raise click.UsageError("--flush sends what is pending; it takes no --event or --trial")
    store = store_for(home)
    run = store.run(run_id) if run_id else None
    config = load_config(None, config_file)[0].notify if config_file else None

    def echo(line: str) -> None:
        click.echo(line, err=True)

    if flush:
        result = notifying.flush(run or store, config=config, echo=echo)
    else:
        result = notifying.notify(run, event, config=config or notifying.run_config(run), echo=echo, trial=trial)
    for path in result.messages:
        click.echo(f"OUTBOX={path}")


# ============================================================================ docker / images commands (issue 5)


# ============================================================================ monitor commands (issue 6)


# ============================================================================ jenkins / hook commands (issue 8)


# ============================================================================ end of commands
