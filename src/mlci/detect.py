"""Detect the model kind (a first version: imports decide; issue 3 makes it robust).

`detect(path)` says which framework trains the code and which image runs it.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

from mlci.errors import DetectionError, UsageError


@dataclass
class Evidence:
    file: str
    line: int
    text: str
    why: str


@dataclass
class Detection:
    framework: str
    architecture: str
    entry: Path
    mode: str
    evidence: list[Evidence] = field(default_factory=list)
    fallback: bool = False

    def image(self, images) -> str | None:
        return getattr(images, self.framework, None)

    def to_dict(self) -> dict:
        return {"framework": self.framework, "architecture": self.architecture, "entry": str(self.entry),
                "mode": self.mode, "fallback": self.fallback, "evidence": [e.__dict__ for e in self.evidence]}


def detect(path: Path, *, config=None) -> Detection:
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{path}: not found", hint="pass a model file")
    tree = ast.parse(path.read_bytes())
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module.split(".")[0])
    mode = "module" if any(isinstance(n, ast.FunctionDef) and n.name == "build_model" for n in tree.body) else "script"
    text = path.read_text()
    if modules & {"keras", "tensorflow"}:
        return Detection("keras", "cnn" if "Conv" in text else "ann", path, mode)
    if "sklearn" in modules:
        return Detection("sklearn", "classical", path, mode)
    raise DetectionError(f"{path}: no Keras or scikit-learn model found", hint="map it in [images] of mlci.toml")
