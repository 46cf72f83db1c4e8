"""LocalRunner: a trial trains in a subprocess of this machine (no Docker needed).

Works across processes: a handle is a pid, so a monitor started later can still watch it.
"""
from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from mlci.core.errors import RunnerError
from mlci.core.workarea import work_dir
from mlci.runners.base import LaunchSpec, Runner, Status

EXIT_FILE = "exit_code"  # written by the harness as it ends, read when the process is not our child
REAP_SECONDS = 5.0  # a process seen ended (a zombie) is reaped within this: its last threads are exiting


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def trial_env(spec: LaunchSpec) -> dict[str, str]:
    """The environment of a trial's process (a fresh one, or one forked by a warm worker)."""
    env = {**os.environ, **spec.env, "PYTHONUNBUFFERED": "1", "MLCI_TRIAL_DIR": str(spec.trial_dir)}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return env


def trial_cwd(spec: LaunchSpec) -> Path:
    """The working directory of a trial's process: its own work area (trials/<n>/work), never the user's folder."""
    return work_dir(spec.trial_dir)


class LocalRunner(Runner):
    name = "local"

    def __init__(self) -> None:
        self._children: dict[int, tuple[subprocess.Popen, Path]] = {}

    def start(self, spec: LaunchSpec) -> str:
        spec.trial_dir.mkdir(parents=True, exist_ok=True)
        (spec.trial_dir / EXIT_FILE).unlink(missing_ok=True)
        env = trial_env(spec)
        model_file = spec.prepare_work_area()  # the trial runs in its own copy: the user's folder is only read
        args = [sys.executable, "-m", "mlci", *spec.harness_args(spec.trial_dir.resolve(), model_file.resolve())]
        log = open(spec.trial_dir / "log.txt", "ab")
        try:
            process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       cwd=trial_cwd(spec), env=env, start_new_session=True)
        except OSError as exc:
            raise RunnerError(f"cannot start the training process ({exc})", hint="check the Python interpreter") from None
        finally:
            log.close()
        self._children[process.pid] = (process, spec.trial_dir)
        return str(process.pid)

    def _status_of_code(self, handle: str, code: int) -> Status:
        if code < 0:
            name = _signal_name(-code)
            return Status("killed", handle, exit_code=128 - code, signal=-code, reason=f"killed by {name}")
        return Status("exited", handle, exit_code=code, reason=f"exit code {code}")

    def status(self, handle: str) -> Status:
        pid = int(handle)
        child = self._children.get(pid)
        if child is not None:
            code = child[0].poll()
            return Status("running", handle) if code is None else self._status_of_code(handle, code)
        if _alive(pid):
            return Status("running", handle)
        return Status("missing", handle, reason="process gone (not a child of this mlci process)")

    def status_for(self, handle: str, trial_dir: Path) -> Status:
        """Status of a process started by another mlci process: its trial folder tells how it ended."""
        found = self.status(handle)
        if found.state != "missing":
            return found
        return self.ended(handle, trial_dir)

    def ended(self, handle: str, trial_dir: Path) -> Status:
        """How a process that is gone ended: the exit code its harness (or warm worker) left in the trial folder."""
        exit_file = trial_dir / EXIT_FILE
        if exit_file.exists():
            try:
                return self._status_of_code(handle, int(exit_file.read_text().strip()))
            except ValueError:
                pass
        return Status("killed", handle, reason="process vanished without an exit code (killed?)")

    def wait(self, handle: str, timeout: float | None = None) -> Status:
        """Wakes the moment the process ends (a pidfd), our child or not: no polling interval lies between a
        trial's end and the next launch."""
        pid = int(handle)
        if not _wait_gone(pid, timeout):
            return Status("running", handle)
        child = self._children.get(pid)
        if child is not None:
            try:  # a zombie leader whose other threads are still exiting cannot be reaped yet: wait for them
                child[0].wait(timeout=REAP_SECONDS)
            except subprocess.TimeoutExpired:
                return Status("running", handle)
        return self.status(handle)

    def kill(self, handle: str) -> None:
        pid = int(handle)
        try:
            os.killpg(pid, signal.SIGKILL)  # the harness leads its own session: take its children too
        except (ProcessLookupError, PermissionError):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        child = self._children.get(pid)
        if child is not None:
            child[0].wait()


def _wait_gone(pid: int, timeout: float | None) -> bool:
    """Block until `pid` has ended (a zombie counts as ended) or `timeout` passes; True if it ended."""
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    except (OSError, AttributeError):  # no pidfd (an old kernel): look every 0.1 s
        fd = None
    try:
        while _alive(pid):
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            step = 0.5 if left is None else min(left, 0.5)
            if fd is None:
                time.sleep(min(step, 0.1))
            else:
                select.select([fd], [], [], step)
        return True
    finally:
        if fd is not None:
            os.close(fd)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is dead for our purposes
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().split(b")")[-1].split()[0] != b"Z"
    except OSError:
        return True
