"""What every part of the harness shares: liveness, history, versions, the user's failing line.

train, script, keras_fit and sklearn_fit import from here; this module imports none of them.
"""
from __future__ import annotations

import functools
import os
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from mlci.core.store import write_json

Echo = Callable[[str], None]
HEARTBEAT_SECONDS = 1.0


def passive_openmp() -> None:
    """PyTorch's OpenMP threads sleep while they wait instead of spinning (read once, as torch is imported).

    Spinning threads on cores busy with other trials slow a small model several times over.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def user_line(exc: BaseException, model_file: Path) -> str:
    """The line of the user's file where the exception passed last."""
    line = "?"
    for frame in traceback.extract_tb(exc.__traceback__):
        if Path(frame.filename).resolve() == model_file.resolve():
            line = str(frame.lineno)
    return line


def history(rows: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Per-epoch rows ({"epoch": 0, "loss": ...}) as Keras-style history lists."""
    found: dict[str, list[float]] = {}
    for row in rows:
        for key, value in row.items():
            if key != "epoch":
                found.setdefault(key, []).append(value)
    return found


def versions(*names: str) -> dict[str, str]:
    """Python's and these installed packages' versions (missing packages are left out)."""
    return dict(_versions(names))


@functools.lru_cache(maxsize=None)
def _versions(names: tuple[str, ...]) -> dict[str, str]:
    # Reading package metadata scans every distribution on sys.path; a warm worker asks once before it
    # forks (warm_worker.preload), so its trials inherit the answer. Installed versions do not change under
    # a running process.
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": sys.version.split()[0]}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            pass
    return found


class Heartbeat:
    """Touches trials/<n>/heartbeat every second with the epoch reached, for the monitor and progress bars."""

    def __init__(self, trial_dir: Path):
        self.path = trial_dir / "heartbeat"
        self.epoch = 0
        self.epochs: int | None = None
        self.value: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="mlci-heartbeat", daemon=True)

    def __enter__(self) -> "Heartbeat":
        self.beat()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.beat(done=True)

    def beat(self, done: bool = False) -> None:
        payload = {"pid": os.getpid(), "time": time.time(), "epoch": self.epoch, "epochs": self.epochs,
                   "value": self.value, "done": done}
        try:
            write_json(self.path, payload)
        except OSError:
            pass  # a full disk must not kill training; the monitor then sees a stale beat

    def _loop(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            self.beat()
