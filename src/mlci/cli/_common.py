"""What every command module shares: the consoles, MlciError -> exit code, the common options.

Nothing here knows a command; the command modules import from it.
"""
from __future__ import annotations

import functools
import sys
from pathlib import Path

from typing import TYPE_CHECKING, Any

import click

from mlci.core.errors import EXIT_INTERRUPTED, EXIT_USAGE, MlciError, redact

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


def handle_errors(func=None, *, os_errors: bool = True):
    """MlciError -> one line on stderr + its exit code; Ctrl-C -> 130; anything else is a bug.

    os_errors: an OSError (a permission, a full disk) is one line and exit 2 too; the training harness
    (`mlci train`) turns it off, so a trial's own OSError keeps its traceback in the trial log.
    """
    if func is None:
        return functools.partial(handle_errors, os_errors=os_errors)

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except MlciError as err:
            click.echo(f"mlci: error: {err.one_line()}", err=True)
            sys.exit(err.exit_code)
        except OSError as exc:
            if not os_errors:
                raise
            # The machine refused (permissions, a full disk, a file where a folder belongs): not a bug in mlci.
            where = f"{exc.filename}: " if exc.filename else ""
            line = redact(" ".join(f"{where}{exc.strerror or exc}".split()))
            click.echo(f"mlci: error: {line}; check the permissions and free space of that path", err=True)
            sys.exit(EXIT_USAGE)
        except KeyboardInterrupt:
            click.echo("mlci: interrupted; the run store is consistent, run the same command again to continue",
                       err=True)
            sys.exit(EXIT_INTERRUPTED)

    return wrapper


class FiniteFloat(click.FloatRange):
    """A float option that is a number (no nan, no inf) in the range: `--timeout nan` is a usage error."""

    name = "finite float"

    def convert(self, value, param, ctx):
        import math

        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


TRIAL_NUMBER = click.IntRange(min=0, max=10**9)  # a trial's folder number


def home_option(func):
    return click.option("--home", type=click.Path(file_okay=False, path_type=Path), envvar="MLCI_HOME",
                        default=None, help="Run store folder [env MLCI_HOME; default ./.mlci].")(func)


def store_for(home: Path | None) -> RunStore:
    from mlci.core.store import RunStore

    return RunStore(home)


def _properties(path: Path | None, values: dict) -> None:
    """KEY=VALUE lines on stdout, and in a file for Jenkins' parameterized trigger (one checked writer)."""
    from mlci.integrations.jenkins import property_lines, write_properties

    lines = write_properties(path, values, append=True) if path else property_lines(values)
    for line in lines:
        click.echo(line)


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
