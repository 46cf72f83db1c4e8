"""The example models that ship inside mlci (mlci/examples/, the checkout's models/), and copying one out.

`mlci example mnist-cnn` gives an installed mlci what a clone has in models/mnist_cnn/: a model and its mlci.toml.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from mlci.core.errors import UsageError


@dataclass(frozen=True)
class Example:
    name: str  # what the user types: mnist-cnn
    folder: Path  # inside the package
    model: str  # the model file's name: mnist_cnn.py
    summary: str  # the model module's first docstring line


def examples() -> list[Example]:
    """The shipped examples, by name."""
    root = Path(str(resources.files("mlci") / "examples"))
    found = []
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        models = sorted(folder.glob("*.py"))
        if not folder.is_dir() or len(models) != 1:
            continue
        found.append(Example(folder.name.replace("_", "-"), folder, models[0].name, _summary(models[0])))
    return found


def _summary(model: Path) -> str:
    import ast

    docstring = ast.get_docstring(ast.parse(model.read_text(encoding="utf-8"))) or ""
    return docstring.strip().splitlines()[0] if docstring.strip() else ""


def copy_example(name: str, dest: Path | None = None) -> Path:
    """Copy example `name` into `dest` (default ./<its folder name>); returns the copied model file."""
    by_name = {example.name: example for example in examples()}
    example = by_name.get(name.replace("_", "-"))
    if example is None:
        raise UsageError(f"no example model named '{name}'",
                         hint=f"known examples: {', '.join(by_name) or 'none (reinstall mlci)'}; "
                              "`mlci example` lists them")
    target = dest if dest is not None else Path(example.folder.name)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise UsageError(f"{target}: exists and is not an empty folder",
                         hint="name a new folder: mlci example NAME DEST")
    shutil.copytree(example.folder, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
                    dirs_exist_ok=True)
    return target / example.model
