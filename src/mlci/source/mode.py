"""Module or script: the one rule detection, the rewriter, tweak and the harness all use.

A model module has build_model at the top level — defined, imported (`from impmodel import build_model`)
or assigned — and the harness calls build_model(hp). Anything else is a script, run unchanged.
"""
from __future__ import annotations

import ast
from typing import Literal

Mode = Literal["module", "script"]


def defines_build_model(tree: ast.Module) -> bool:
    """build_model bound at the top level of `tree` (def, import or assignment)."""
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == "build_model":
            return True
        if isinstance(node, (ast.Import, ast.ImportFrom)) and any(
                (alias.asname or alias.name) == "build_model" for alias in node.names):
            return True
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "build_model" for t in targets):
                return True
    return False


def model_mode(source: str) -> Mode:
    """"module" when the source binds build_model at the top level, else "script" (also when it cannot be parsed)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return "script"
    return "module" if defines_build_model(tree) else "script"


def is_script(source: str) -> bool:
    return model_mode(source) == "script"
