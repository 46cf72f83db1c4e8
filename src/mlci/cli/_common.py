"""What every command module shares: the consoles, MlciError -> exit code, the common options.

Nothing here knows a command; the command modules import from it.
"""
from __future__ import annotations

import functools
import sys
from pathlib import Path

from typing import TYPE_CHECKING, Any

import click

from mlci.core.errors import EXIT_INTERRUPTED, MlciError

if TYPE_CHECKING:
    from mlci.core.store import RunStore


class LazyConsole:
    """A rich Console made on first use: commands that print plain lines never import rich (bench/startup.py)."""

    def __init__(self, **options: Any):
        self._options = options
        self._console = None

    def __getattr__(self, name: str) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return getattr(self._console, name)


console = LazyConsole(stderr=True, highlight=False)
out = LazyConsole(highlight=False)

SEE_EXIT_HELP = "Exit codes: see `mlci --help`."  # the table is shown once, by the group


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
    from mlci.core.store import RunStore

    return RunStore(home)


def _properties(path: Path | None, values: dict) -> None:
    """KEY=VALUE lines on stdout, and in a file for Jenkins' parameterized trigger."""
    lines = [f"{key}={value}" for key, value in values.items() if value is not None]
    for line in lines:
        click.echo(line)
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")


run_option = click.option("--run", "run_id", required=True, envvar="RUN_ID", help="Run id [env RUN_ID].")
properties_option = click.option("--properties", type=click.Path(dir_okay=False, path_type=Path),
                                 help="Also append KEY=VALUE lines to this file (Jenkins parameterized trigger).")


def _open(home, run_id):
    store = store_for(home)
    return store, store.run(run_id)


def _install_signal_handlers() -> None:
    """SIGTERM (Jenkins aborting a build) ends cleanly like Ctrl-C: the run store stays consistent."""
    import signal

    def _raise(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _raise)
