"""`mlci detect`: the framework, architecture and training image of a model file, notebook or folder.

Prints the evidence, or JSON for scripts and Jenkins.
"""
from __future__ import annotations

from pathlib import Path

import click

from mlci.cli._common import handle_errors
from mlci.core.errors import MlciError


@click.command("detect", epilog="\b\nExit codes: 0 detected; 2 missing path or bad config; 4 unsupported, "
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

    from mlci.core.config import load_config
    from mlci.source.detect import detect

    try:
        config = load_config(None, config_file)[0] if config_file else None
        detection = detect(path, config=config)
    except MlciError as err:
        if as_json:  # a script reading stdout gets an answer too; the one line still goes to stderr
            click.echo(json.dumps({"error": err.one_line(), "exit_code": err.exit_code}))
        raise
    if as_json:
        click.echo(json.dumps(detection.to_dict(), indent=2))
        return
    image = detection.image_name or f"(none: set [images] {detection.framework} = \"...\" in mlci.toml)"
    # Plain lines (click.echo, not rich): detect runs on every Jenkins build and must start at once.
    click.echo(f"framework     {detection.framework}\narchitecture  {detection.architecture}\n"
               f"image         {image}\nentry         {detection.entry}\nmode          {detection.mode}"
               + ("\nreading       degraded (not valid Python 3; see the evidence)" if detection.fallback else "")
               + "\nevidence:")
    for item in detection.evidence:
        where = f"{item.file}:{item.line}" if item.line else item.file
        click.echo(f"  {where}  {item.why}" + (f"\n      {item.text}" if item.text else ""))
