"""`mlci example [NAME [DEST]]`: list the example models that ship with mlci, or copy one out to train it.

Thin over mlci.source.examples; an installed mlci has no models/ folder, so this is where they come from.
"""
from __future__ import annotations

from pathlib import Path

import click

from mlci.cli._common import SEE_EXIT_HELP, console, handle_errors, out


@click.command("example", epilog=SEE_EXIT_HELP)
@click.argument("name", required=False)
@click.argument("dest", required=False, type=click.Path(path_type=Path))
@handle_errors
def example_command(name: str | None, dest: Path | None) -> None:
    """Copy example model NAME (with its mlci.toml) into DEST [default ./<name>]; without NAME, list them.

    \b
    mlci example mnist-cnn            # -> ./mnist_cnn/mnist_cnn.py, ./mnist_cnn/mlci.toml
    mlci run mnist_cnn/mnist_cnn.py
    """
    from mlci.source.examples import copy_example, examples

    if name is None:
        for example in examples():
            out.print(f"{example.name:<16} {example.summary}", markup=False, soft_wrap=True)
        return
    model = copy_example(name, dest)
    console.print(f"copied to {model.parent}; train it with: mlci run {model}", markup=False)
    out.print(str(model), markup=False, soft_wrap=True)
