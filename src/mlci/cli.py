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

@main.command("detect", epilog="\b\nExit codes: 0 detected; 2 missing path or bad config; 4 unsupported, "
                               "binary or empty code (the message says how to map an image in mlci.toml).")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the detection as JSON (for scripts and Jenkins).")
@click.option("--config", "config_file", type=click.Path(path_type=Path), default=None,
              help="Config file [default: mlci.toml next to PATH].")
@handle_errors
def detect_command(path: Path, as_json: bool, config_file: Path | None) -> None:
    """Detect the framework (sklearn, keras, torch) and architecture (cnn, ann, rnn, classical) of
    PATH: a .py file, a notebook, or a folder (its entry file), and the image that trains it."""
    import json

    from mlci.config import load_config
    from mlci.detect import detect

    config = load_config(None, config_file)[0] if config_file else None
    detection = detect(path, config=config)
    if as_json:
        click.echo(json.dumps(detection.to_dict(), indent=2))
        return
    image = detection.image_name or f"(none: set [images] {detection.framework} = \"...\" in mlci.toml)"
    out.print(f"framework     {detection.framework}\narchitecture  {detection.architecture}\n"
              f"image         {image}\nentry         {detection.entry}\nmode          {detection.mode}"
              + ("\nreading       degraded (not valid Python 3; see the evidence)" if detection.fallback else "")
              + "\nevidence:", markup=False)
    for item in detection.evidence:
        where = f"{item.file}:{item.line}" if item.line else item.file
        out.print(f"  {where}  {item.why}" + (f"\n      {item.text}" if item.text else ""), markup=False,
                  soft_wrap=True)



# ============================================================================ notify commands (issue 7)


# ============================================================================ docker / images commands (issue 5)


# ============================================================================ monitor commands (issue 6)


# ============================================================================ jenkins / hook commands (issue 8)


# ============================================================================ end of commands
