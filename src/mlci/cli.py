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


# ============================================================================ docker / images commands (issue 5)


@main.group("images")
def images_group() -> None:
    """The training images: one per framework (sklearn, keras) on mlci/base, built from dockerfiles/."""


@images_group.command("build")
@click.argument("names", nargs=-1, type=click.Choice(["base", "sklearn", "keras"]))
@click.option("--base", "base_image", default=None, metavar="IMAGE",
              help="Image to build on [env MLCI_BASE_IMAGE; default: mlci/bookworm-python:3.11 when "
                   "scripts/make-base-image.sh made it, else python:3.11-slim].")
@click.option("--wheelhouse", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder of wheels for the images' Python [env MLCI_WHEELHOUSE; default .cache/wheelhouse]; "
                   "missing wheels are downloaded into it.")
@click.option("--force", is_flag=True, help="Rebuild even when the content hash is unchanged.")
@click.option("--verbose", "-v", is_flag=True, help="Show the build output.")
@handle_errors
def images_build(names: tuple[str, ...], base_image: str | None, wheelhouse: Path | None, force: bool,
                 verbose: bool) -> None:
    """Build mlci/base, mlci/sklearn and mlci/keras (or NAMES); unchanged images are not rebuilt."""
    from mlci.images import build_images

    def progress(line: str) -> None:
        if verbose or line.startswith(("mlci/", "downloading", "pulling")):
            console.print(line, markup=False)

    results = build_images(names or None, base=base_image, wheelhouse=wheelhouse, force=force, progress=progress)
    for result in results:
        what = f"built in {result.seconds:.0f}s" if result.built else "unchanged"
        out.print(f"{result.tag}  {result.image_id[7:19]}  {result.size / 1e6:.0f} MB  {what}", markup=False)


@images_group.command("list")
@handle_errors
def images_list() -> None:
    """The mlci images in the Docker engine, with framework, size and content hash."""
    from rich.table import Table

    from mlci.images import list_images

    table = Table("image", "id", "framework", "size", "created", "content hash")
    for info in list_images():
        table.add_row(info.tag, info.image_id[7:], info.framework or "", f"{info.size / 1e6:.0f} MB", info.created,
                      info.content_hash or "")
    out.print(table)


# ============================================================================ monitor commands (issue 6)


# ============================================================================ jenkins / hook commands (issue 8)


# ============================================================================ end of commands
