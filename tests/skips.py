"""The one skip policy of the suite: a missing engine, image, SDK, linter or dev extra fails the test under CI,
and skips it with the reason elsewhere (a laptop without Docker still runs everything else).

CI means the variable CI is exactly "true" or "1" (case aside): `.ci/run` exports CI=true, and a developer's
CI=false or CI=0 is not CI.
"""
from __future__ import annotations

import importlib
import os
import shutil
from types import ModuleType
from typing import NoReturn

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1")


def unavailable(why: str, fix: str, *, module_level: bool = False) -> NoReturn:
    """CI: fail with what is missing and how CI should have provided it; elsewhere: skip with the reason."""
    if in_ci():
        pytest.fail(f"CI=true but {why}; {fix}", pytrace=False)
    pytest.skip(why, allow_module_level=module_level)


def require_module(name: str, extra: str, *, module_level: bool = False) -> ModuleType:
    """The Python package `name` from the setup.cfg extra `extra` (what pytest.importorskip did, under the policy)."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        unavailable(f"the Python package {name} is not installed ({exc})",
                    f"install the extra: pip install -e '.[{extra}]'", module_level=module_level)


def require_programs(*names: str, fix: str) -> None:
    """Programs on PATH (a linter and its runtime, say)."""
    missing = [name for name in names if shutil.which(name) is None]
    if missing:
        unavailable(f"{', '.join(missing)} not found on PATH", fix)
