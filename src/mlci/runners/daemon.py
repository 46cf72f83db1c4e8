"""Warm workers kept between runs (`workers = "daemon"`): the framework is imported once, not once per run.

A run connects to its framework's daemon (`python -m mlci.runners.warm_worker --daemon ...`), starting it if
there is none, and asks it to fork each trial exactly as a run's own warm worker does (docs/warm-workers.md).
The daemon serves one run after another and ends after `worker_idle_minutes` with no run and no trial.

Which daemon a run may use is decided by its key: the Python, mlci's own files (a changed checkout is another
key), the installed packages, and the environment variables that the framework reads as it is imported
(TF_*, KERAS_*, OMP_*, ...). The sockets live in a folder that only the user can enter ($MLCI_RUNTIME_DIR,
else $XDG_RUNTIME_DIR/mlci, else /tmp/mlci-UID); `mlci daemon` lists them, `mlci daemon --stop` ends them.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import sysconfig
import time
from pathlib import Path
from typing import Any

from mlci.core.errors import RunnerError
from mlci.runners.warm_worker import rss_bytes, worker_env

# Variables read while the frameworks and their native libraries are imported: a daemon imported with other
# values would train differently from a fresh process, so they are part of its key.
IMPORT_ENV_PREFIXES = ("TF_", "KERAS_", "OMP_", "MKL_", "OPENBLAS_", "CUDA_", "XLA_", "PYTORCH_", "TORCH_",
                       "PYTHON", "LD_", "MLCI_TORCH", "HOME", "MPLCONFIGDIR")
SOCKET_LIMIT = 107  # sun_path
START_SECONDS = 30.0  # until the daemon's socket exists (its import runs after that)
FOLDER_HINT = "set MLCI_RUNTIME_DIR to a short folder of your own, or workers = \"warm\" in mlci.toml"


def runtime_dir() -> Path:
    """The user's own folder for daemon sockets: created 0700, refused if anyone else could enter it."""
    base = os.environ.get("MLCI_RUNTIME_DIR")
    if base:
        folder = Path(base)
    elif os.environ.get("XDG_RUNTIME_DIR"):
        folder = Path(os.environ["XDG_RUNTIME_DIR"]) / "mlci"
    else:
        folder = Path("/tmp") / f"mlci-{os.getuid()}"
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = folder.lstat()
    except OSError as exc:
        raise RunnerError(f"cannot create the warm workers' folder {folder} ({exc.strerror})", hint=FOLDER_HINT) from None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise RunnerError(f"the warm workers' folder {folder} is not a folder only you can enter "
                          f"(owner uid {info.st_uid}, mode {stat.S_IMODE(info.st_mode):o})", hint=FOLDER_HINT)
    return folder


def _package_root() -> Path:
    return Path(__file__).resolve().parents[2]  # the folder holding mlci/ (a checkout's src/)


def key(framework: str, environ: dict[str, str] | None = None) -> str:
    """What a daemon must share with a run to fork its trials: a change to any of it means another daemon."""
    environ = os.environ if environ is None else environ
    digest = hashlib.sha256()
    mlci = Path(__file__).resolve().parents[1]
    for path in sorted(mlci.rglob("*.py")):
        info = path.stat()
        digest.update(f"{path}:{info.st_mtime_ns}:{info.st_size}\n".encode())
    for folder in sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}):
        try:  # installing or removing a package changes its folder's entries
            digest.update(f"{folder}:{os.stat(folder).st_mtime_ns}\n".encode())
        except OSError:
            pass
    digest.update(f"{sys.executable}\n{sys.version}\n{_package_root()}\n{os.getuid()}\n".encode())
    for name in sorted(environ):
        if name.startswith(IMPORT_ENV_PREFIXES):
            digest.update(f"{name}={environ[name]}\n".encode())
    return f"{framework}-{digest.hexdigest()[:16]}"


class Place:
    """Where a framework's daemon for this run's key lives: its socket, lock, log and record in the user's folder."""

    def __init__(self, framework: str):
        self.framework = framework
        self.folder = runtime_dir()
        self.name = key(framework)
        self.socket = self.folder / f"{self.name}.sock"
        if len(str(self.socket)) > SOCKET_LIMIT:
            raise RunnerError(f"the warm workers' socket path {self.socket} is longer than {SOCKET_LIMIT} characters",
                              hint=FOLDER_HINT)
        self.log = self.folder / f"{self.name}.log"

    def _try(self) -> socket.socket | None:
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            connection.connect(str(self.socket))
            return connection
        except (FileNotFoundError, ConnectionRefusedError):
            connection.close()
            return None  # none, or a dead one's socket

    def connect(self, modules: tuple[str, ...], idle_minutes: float, *,
                stale: bool = False) -> tuple[socket.socket, subprocess.Popen | None]:
        """A connection to the daemon, started if there is none (one start among runs that start together);
        and the daemon's process if this run started it. Its "ready" line comes once it has imported.
        `stale`: the socket at the path is known dead (it reset a connection): replace it."""
        from mlci.core._files import file_lock

        found = None if stale else self._try()
        if found is not None:
            return found, None
        lock = self.folder / f"{self.name}.lock"
        with file_lock(lock, timeout=START_SECONDS,
                       busy=RunnerError(f"another run holds {lock} for over {START_SECONDS:g}s", hint=FOLDER_HINT)):
            found = None if stale else self._try()  # another run started it while this one waited for the lock
            if found is not None:
                return found, None
            self.socket.unlink(missing_ok=True)  # a dead daemon's
            started = self._start(modules, idle_minutes)
            deadline = time.monotonic() + START_SECONDS
            while time.monotonic() < deadline and started.poll() is None:
                found = self._try()
                if found is not None:
                    return found, started
                time.sleep(0.01)
        started.kill()
        raise RunnerError(f"the warm {self.framework} worker did not start ({self.log_tail()})",
                          hint="set workers = \"warm\" in mlci.toml for a worker per run")

    def _start(self, modules: tuple[str, ...], idle_minutes: float) -> subprocess.Popen:
        with open(self.log, "ab") as log:
            try:
                started = subprocess.Popen(
                    [sys.executable, "-m", "mlci.runners.warm_worker", "--daemon", str(self.socket),
                     str(idle_minutes * 60), self.framework, *modules],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=worker_env(), cwd="/",
                    start_new_session=True)
            except OSError as exc:
                raise RunnerError(f"cannot start a warm worker ({exc})", hint="set workers = \"fresh\" in mlci.toml") from None
        record = {"framework": self.framework, "pid": started.pid, "python": sys.executable, "started": time.time(),
                  "idle_minutes": idle_minutes, "mlci": str(_package_root())}
        (self.folder / f"{self.name}.json").write_text(json.dumps(record) + "\n")
        return started

    def log_tail(self) -> str:
        try:
            return " | ".join(self.log.read_text(errors="replace").strip().splitlines()[-3:])
        except OSError:
            return ""

    def kill(self, pid: int | None, started: subprocess.Popen | None) -> None:
        """End a daemon that hangs (the next start makes another); its trials go on in their own sessions."""
        if pid is not None:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        elif started is not None:
            started.kill()
        self.socket.unlink(missing_ok=True)


def daemons() -> list[dict[str, Any]]:
    """The daemons in the user's folder that are alive: framework, pid, started, idle minutes."""
    found = []
    for info_file in sorted(runtime_dir().glob("*.json")):
        try:
            info = json.loads(info_file.read_text())
            command = Path(f"/proc/{int(info['pid'])}/cmdline").read_bytes()
        except (OSError, ValueError, KeyError):
            continue
        if str(info_file.with_suffix(".sock")).encode() not in command:
            continue  # ended, and its pid is another program's by now: never ours to stop
        if not (info_file.with_suffix(".sock")).exists():
            continue
        found.append({**info, "key": info_file.stem, "rss": rss_bytes(int(info["pid"]))})
    return found


def stop_all() -> list[dict[str, Any]]:
    """End every daemon of the user's (trials they forked go on); returns what was ended."""
    stopped = daemons()
    for info in stopped:
        try:
            os.kill(int(info["pid"]), signal.SIGTERM)
        except ProcessLookupError:
            pass
    return stopped
