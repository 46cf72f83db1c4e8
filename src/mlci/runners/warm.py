"""WarmRunner: a local trial is a process forked from a worker that has imported the framework once.

Same handles (a pid), kill (the trial's process group), exit file and heartbeat as LocalRunner, so lifecycle
and the monitor follow a warm trial like a fresh one; only the start differs (no interpreter, no import).
A worker that died or stopped answering is replaced on the next start. See docs/warm-workers.md.
"""
from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from pathlib import Path
from typing import Any

from mlci.core.config import memory_bytes
from mlci.core.errors import RunnerError
from mlci.runners.base import LaunchSpec, Status
from mlci.runners import daemon
from mlci.runners.local import EXIT_FILE, LocalRunner, _alive, trial_cwd, trial_env
from mlci.runners.warm_worker import IDENTITY_FILE, MEMORY_FILE, model_libraries, start_ticks, worker_env

READY_SECONDS = 300.0  # importing TensorFlow on a busy 2-core machine
ANSWER_SECONDS = 30.0  # a fork answers in milliseconds: longer means the worker hangs
REAP_SECONDS = 1.0  # how long a dead trial's exit code may take to appear (its worker reaps it at once)


class WorkerLost(Exception):
    """The worker died or stopped answering: replace it and ask again."""


class _Connection:
    """The runner's side of the worker protocol: one JSON line per request, one per answer."""

    framework: str
    modules: tuple[str, ...] = ()

    def __init__(self) -> None:
        self._buffer = b""
        self.import_seconds: float | None = None
        self.pid: int | None = None  # known once it is ready
        self.reused = False  # a daemon that had served an earlier run: this run waited for no import

    # what a transport provides
    def _chunk(self, wait: float) -> bytes | None:
        """Bytes the worker sent within `wait` seconds (None: nothing yet); WorkerLost if it ended."""
        raise NotImplementedError

    def _send(self, data: bytes) -> None:
        raise NotImplementedError

    def _why(self) -> str:
        """The worker's last words (its stderr or log), for an error."""
        return ""

    def _read(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise WorkerLost(f"no answer in {timeout:g}s")
            self._buffer += self._chunk(min(left, 1.0)) or b""
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def wait_ready(self) -> None:
        """Block until the worker has imported the framework (at once if it has); RunnerError if it cannot."""
        if self.pid is not None:
            return
        ready = self._ready_line()
        if not ready.get("ready"):
            self.close()
            why = " | ".join(filter(None, [ready.get("error"), self._why()]))
            raise RunnerError(f"the warm {self.framework} worker did not start ({why})",
                              hint="set workers = \"fresh\" in mlci.toml to start a process per trial")
        self.pid = int(ready["pid"])
        self.import_seconds = ready.get("import_seconds")
        self.reused = bool(ready.get("served"))

    def _ready_line(self) -> dict[str, Any]:
        try:
            return self._read(READY_SECONDS)
        except WorkerLost as lost:
            return {"error": str(lost)}

    def fork(self, request: dict[str, Any]) -> int:
        self.wait_ready()
        if self.ended():
            raise WorkerLost("the worker ended")
        self._send((json.dumps({**request, "modules": list(self.modules)}) + "\n").encode())
        answer = self._read(ANSWER_SECONDS)
        if "pid" not in answer:
            raise RunnerError(f"the warm worker could not start the trial ({answer.get('error')})",
                              hint="set workers = \"fresh\" in mlci.toml to start a process per trial")
        return int(answer["pid"])

    def ended(self) -> bool:
        raise NotImplementedError

    def kill(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class Worker(_Connection):
    """One pre-imported worker process of this run (`python -m mlci.runners.warm_worker FRAMEWORK`), its pipes."""

    def __init__(self, framework: str, modules: tuple[str, ...] = (), *, wait: bool = True):
        """Start the worker (it imports the framework and `modules`, the model's libraries); with wait=False it
        imports in the background until `wait_ready` (or a fork)."""
        super().__init__()
        self.framework = framework
        self.stderr = tempfile.TemporaryFile()  # why it failed to start, if it does
        try:
            self.process = subprocess.Popen([sys.executable, "-m", "mlci.runners.warm_worker", framework, *modules],
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
                                            env=worker_env(), start_new_session=True)
        except OSError as exc:
            raise RunnerError(f"cannot start a warm worker ({exc})", hint="set workers = \"fresh\" in mlci.toml") from None
        self._finalizer = weakref.finalize(self, _stop, self.process)
        if wait:
            self.wait_ready()

    def _chunk(self, wait: float) -> bytes | None:
        fd = self.process.stdout.fileno()
        readable, _, _ = select.select([fd], [], [], wait)
        if not readable:
            return None
        chunk = os.read(fd, 65536)
        if not chunk:
            raise WorkerLost(f"worker ended ({self.process.poll()})")
        return chunk

    def _send(self, data: bytes) -> None:
        try:
            self.process.stdin.write(data)
            self.process.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise WorkerLost(str(exc)) from None

    def _why(self) -> str:
        self.stderr.seek(0)
        return " | ".join(self.stderr.read().decode(errors="replace").strip().splitlines()[-3:])

    def ended(self) -> bool:
        return self.process.poll() is not None

    def kill(self) -> None:
        self.process.kill()

    def close(self) -> None:
        if self.pid is None and self.process.poll() is None:
            self.process.kill()  # still importing (a warm-up no trial needed): nothing of it is in use
        self._finalizer()


class DaemonWorker(_Connection):
    """A run's connection to its framework's worker kept warm between runs (mlci.runners.daemon), started if
    there is none: it stays when the run ends."""

    def __init__(self, framework: str, modules: tuple[str, ...] = (), *, idle_minutes: float = 10.0,
                 wait: bool = True):
        super().__init__()
        self.framework, self.modules = framework, modules  # modules: imported by the daemon at a fork
        self.place = daemon.Place(framework)
        self.idle_minutes = idle_minutes
        self.connection, self.started = self.place.connect(modules, idle_minutes)
        if wait:
            self.wait_ready()

    def _ready_line(self) -> dict[str, Any]:
        try:
            return self._read(READY_SECONDS)
        except WorkerLost:
            # Reset before "ready": the socket was a dead daemon's, still held open a moment by a trial it had
            # just forked. Start another in its place.
            self.connection.close()
            self.connection, self.started = self.place.connect(self.modules, self.idle_minutes, stale=True)
        return super()._ready_line()

    @property
    def socket_path(self) -> Path:
        return self.place.socket

    def _chunk(self, wait: float) -> bytes | None:
        self.connection.settimeout(wait)
        try:
            chunk = self.connection.recv(65536)
        except TimeoutError:
            return None
        except OSError as exc:
            raise WorkerLost(f"connection lost ({exc})") from None
        if not chunk:
            raise WorkerLost("the worker ended")
        return chunk

    def _send(self, data: bytes) -> None:
        try:
            self.connection.sendall(data)
        except OSError as exc:
            raise WorkerLost(str(exc)) from None

    def _why(self) -> str:
        return self.place.log_tail()

    def ended(self) -> bool:
        if self.connection.fileno() < 0:
            return True
        if self.pid is not None:
            return not _alive(self.pid)
        return self.started is not None and self.started.poll() is not None

    def kill(self) -> None:
        """It hangs: end it (the next start makes another); its trials go on in their own sessions."""
        self.place.kill(self.pid, self.started)

    def close(self) -> None:
        """This run is done with it; the daemon stays for the next run (until it has been idle long enough)."""
        self.connection.close()
        if self.started is not None:
            self.started.poll()  # reaped, if it has ended


def _stop(process: subprocess.Popen) -> None:
    """Closing stdin ends the worker; trials it started go on in their own sessions."""
    try:
        if process.stdin:
            process.stdin.close()
        process.wait(timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        process.kill()
        process.wait()


class WarmRunner(LocalRunner):
    """LocalRunner's trials without the start-up: one worker per framework forks every trial of this process.

    With `daemon=True` the worker is kept warm between runs (mlci.runners.daemon): a run connects to it."""

    name = "warm"

    def __init__(self, *, daemon: bool = False, idle_minutes: float = 10.0) -> None:
        super().__init__()
        self.daemon = daemon
        self.idle_minutes = idle_minutes
        self.workers: dict[str, _Connection] = {}
        self._closed: dict[str, _Connection] = {}
        self._lock = threading.Lock()  # parallel slots share a worker: one request at a time on its pipe

    def worker(self, framework: str, model_file: Path | None = None, *, wait: bool = True) -> _Connection:
        """The framework's worker, started if there is none (importing also what `model_file` imports)."""
        found = self.workers.get(framework)
        if found is not None and found.pid is None and found.ended():
            found.wait_ready()  # a warm-up that died importing: its error (RunnerError), not a second import
        if found is None or found.ended():
            modules = model_libraries(model_file)
            found = self.workers[framework] = \
                DaemonWorker(framework, modules, idle_minutes=self.idle_minutes, wait=wait) if self.daemon \
                else Worker(framework, modules, wait=wait)
        return found

    def warm_up(self, framework: str, model_file: Path | None = None) -> None:
        """Start the framework's worker now, without waiting: its import overlaps whatever the caller does
        before the first trial (the run's preparation, the baseline's proposal). A worker that cannot start
        is reported by the first trial's start, as without a warm-up."""
        with self._lock:
            try:
                self.worker(framework, model_file, wait=False)
            except RunnerError:
                pass  # no worker process at all: the first trial's start says so, and the run fails there

    def replace(self, framework: str) -> None:
        found = self.workers.pop(framework, None)
        if found is not None:
            found.kill()
            found.close()

    def start(self, spec: LaunchSpec) -> str:
        spec.trial_dir.mkdir(parents=True, exist_ok=True)
        limit = memory_bytes(spec.resources.memory) if spec.resources.memory else None
        model_file = spec.prepare_work_area()  # the trial runs in its own copy: the user's folder is only read
        request = {"trial_dir": str(spec.trial_dir), "cwd": str(trial_cwd(spec)), "env": trial_env(spec),
                   "args": spec.harness_args(spec.trial_dir.resolve(), model_file.resolve()),
                   "memory_limit": limit}
        with self._lock:
            for attempt in (1, 2):
                try:
                    return str(self.worker(spec.framework, model_file).fork(request))
                except WorkerLost as lost:
                    self.replace(spec.framework)  # dead or hung: the next attempt starts a new one
                    if attempt == 2:
                        raise RunnerError(f"the warm worker was lost twice ({lost})",
                                          hint="set workers = \"fresh\" in mlci.toml to start a process per trial") from None
        raise AssertionError("unreachable")

    def status(self, handle: str) -> Status:
        return Status("running", handle) if _alive(int(handle)) else \
            Status("missing", handle, reason="process gone")

    def status_for(self, handle: str, trial_dir: Path) -> Status:
        """Alive and ours (same start time as recorded), or how it ended from the files its worker wrote."""
        pid = int(handle)
        if _alive(pid):
            try:
                identity = json.loads((trial_dir / IDENTITY_FILE).read_text())
            except (OSError, ValueError):
                identity = {}
            recorded = identity.get("start_ticks") if identity.get("pid") == pid else None
            if recorded is not None and start_ticks(pid) not in (None, recorded):
                # After a reboot the pid can belong to another program: not our trial, and never ours to kill.
                return Status("missing", handle, reason=f"process {handle} is gone (the pid now belongs to another "
                                                        f"program: host rebooted?)")
            return Status("running", handle)
        memory = trial_dir / MEMORY_FILE
        if memory.exists():
            return Status("oom", handle, exit_code=137, signal=9,
                          reason=f"OOM-killed ({memory.read_text().strip()})")
        exit_file = trial_dir / EXIT_FILE
        deadline = time.monotonic() + REAP_SECONDS
        while not exit_file.exists() and time.monotonic() < deadline:
            time.sleep(0.02)  # killed by a signal: its worker writes how it ended as it reaps it (milliseconds)
        return self.ended(handle, trial_dir)

    def kept(self) -> list[str]:
        """After close(): a line for each worker that stays warm for the next run (a daemon's)."""
        return [f"the warm {name} worker (pid {worker.pid}) stays for the next run, until it has been idle "
                f"{self.idle_minutes:g} min (`mlci daemon --stop` ends it)"
                for name, worker in self._closed.items() if isinstance(worker, DaemonWorker) and worker.pid is not None]

    def close(self) -> None:
        for framework in list(self.workers):
            self._closed[framework] = worker = self.workers.pop(framework)
            worker.close()
