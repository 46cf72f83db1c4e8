"""The warm worker (`python -m mlci.runners.warm_worker FRAMEWORK`): imports the framework once, forks a trial.

Runs beside `mlci run` (started by WarmRunner). Each trial is a child forked from this pre-imported process: it
starts with the framework already in memory but with nothing of an earlier trial (no model, no Keras session,
no random state), in its own session, and runs exactly what a fresh process runs (`mlci train ...`). The
worker itself never trains: it reaps its children, writes how they ended, and ends one past its memory limit.
Protocol: one JSON line per request on stdin, one JSON line per answer on the file descriptor of its stdout.
With `--daemon SOCKET IDLE` it is kept warm between runs instead (`workers = "daemon"`, mlci.runners.daemon): the
same lines over a unix socket, one connection per `mlci run`, until it has been idle IDLE seconds.
"""
from __future__ import annotations

import json
import os
import select
import signal
import socket
import sys
import time
import traceback
from pathlib import Path
from typing import Any

EXIT_FILE = "exit_code"  # the same file LocalRunner reads (mlci.runners.local.EXIT_FILE)
IDENTITY_FILE = "worker.json"  # pid and start time of the trial's process: a reused pid is not our trial
MEMORY_FILE = "memory_limit.txt"  # written before the worker ends a trial past its memory limit
WATCH_SECONDS = 0.2

# What each framework's trials import anyway; importing it here is what makes a trial start at once.
PRELOAD = {
    "keras": ("numpy", "tensorflow", "keras", "mlci.harness.keras_fit"),
    "sklearn": ("numpy", "scipy.sparse", "sklearn.base", "sklearn.metrics", "sklearn.model_selection", "joblib",
                "mlci.harness.sklearn_fit"),
    # importing torch starts no thread pool (its first operation does), so a fork of the worker is safe;
    # torch._dynamo is what the first optimizer (and use_deterministic_algorithms) imports (bench/overhead.py)
    "torch": ("numpy", "torch", "torch.nn", "torch.optim", "torch._dynamo", "mlci.harness.torch_fit"),
}
COMMON = ("mlci.cli", "mlci.cli.pipeline", "mlci.harness.train", "mlci.harness.data", "mlci.harness.script")
# Beside those, the modules of these libraries that the model file imports (`from sklearn.neighbors import ...`):
# the worker imports what its model needs, not every estimator family. Never the user's own modules: importing
# them could run their code (a plain script trains when imported).
LIBRARIES = frozenset({"numpy", "scipy", "sklearn", "joblib", "pandas", "keras", "tensorflow", "tf_keras", "torch",
                       "torchvision", "lightning", "pytorch_lightning"})


def worker_env() -> dict[str, str]:
    """A worker's environment: this process's, running this very mlci (a checkout's src/ too)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join([package_root, *filter(None, [os.environ.get("PYTHONPATH")])])
    return env


def library_imports(source: str) -> list[str]:
    """The LIBRARIES modules a model's source imports, anywhere in it (build_model may import inside)."""
    import ast

    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            # `from sklearn import neighbors` names a submodule: tried too (an ImportError is passed over)
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names if alias.name != "*")]
        else:
            continue
        found += [name for name in names if name.split(".")[0] in LIBRARIES and name not in found]
    return found


def model_libraries(model_file: Path | str | None) -> tuple[str, ...]:
    """library_imports of a model file; none if it cannot be read (its trial reports that itself)."""
    try:
        return tuple(library_imports(Path(model_file).read_text(encoding="utf-8"))) if model_file else ()
    except (OSError, UnicodeDecodeError):
        return ()


def start_ticks(pid: int) -> int | None:
    """When the process started (clock ticks since boot, /proc/PID/stat field 22): with the pid, its identity."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return int(handle.read().rsplit(b")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", "rb") as handle:
            for line in handle:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _write(path: Path, text: str) -> None:
    try:
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temporary.write_text(text)
        os.replace(temporary, path)
    except OSError:
        pass


def preload(framework: str, modules: list[str] | tuple[str, ...] = ()) -> float:
    """Import what the framework's trials need (and `modules`, the model's libraries), without running
    anything (no TensorFlow op: no thread pools yet)."""
    import importlib

    started = time.perf_counter()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # as `mlci train` sets it, before TensorFlow reads it
    from mlci.harness.common import passive_openmp

    passive_openmp()  # as `mlci train` does, before torch is imported
    for name in (*PRELOAD.get(framework, ()), *[m for m in modules if m.split(".")[0] in LIBRARIES], *COMMON):
        try:
            importlib.import_module(name)
        except ImportError:
            pass  # a missing extra: the trial that needs it reports it, as in a fresh process
    from mlci.harness.common import versions

    for fit in ("mlci.harness.keras_fit", "mlci.harness.sklearn_fit", "mlci.harness.torch_fit", "mlci.harness.script"):
        module = sys.modules.get(fit)
        if module is not None:
            versions(*module.VERSIONS)  # metadata scans, done once: every trial inherits the answer
    return time.perf_counter() - started


def import_more(modules: list[str] | tuple[str, ...]) -> None:
    """Import the model's libraries that this worker has not imported yet (a daemon serves many models)."""
    import importlib

    for name in modules:
        if name.split(".")[0] in LIBRARIES and name not in sys.modules:
            try:
                importlib.import_module(name)
            except ImportError:
                pass  # the trial reports it, as a fresh process would


class Worker:
    """The fork loop: requests in, trial processes out; reaps them and watches their memory."""

    def __init__(self, answers: int):
        self.answers = answers
        self.children: dict[int, dict[str, Any]] = {}  # pid -> the request that started it
        self.private: list[int] = [answers]  # descriptors a trial must not inherit (the protocol's)
        self.start_cwd = os.getcwd()  # sys.path[0] of `python -m`: a trial gets its own cwd there instead

    def answer(self, payload: dict[str, Any], to: int | None = None) -> None:
        os.write(self.answers if to is None else to, (json.dumps(payload) + "\n").encode())

    def reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            request = self.children.pop(pid, None)
            if request is None:
                continue
            exit_file = Path(request["trial_dir"]) / EXIT_FILE
            if os.WIFSIGNALED(status):
                _write(exit_file, f"{-os.WTERMSIG(status)}\n")  # the harness could not write it: say how it ended
            elif not exit_file.exists():
                _write(exit_file, f"{os.WEXITSTATUS(status)}\n")

    def watch_memory(self) -> None:
        for pid, request in list(self.children.items()):
            limit = request.get("memory_limit")
            if not limit:
                continue
            used = rss_bytes(pid)
            if used > limit:
                why = f"trial process grew to {used / 2**20:.0f} MiB RSS, past the limit of {limit / 2**20:.0f} MiB"
                _write(Path(request["trial_dir"]) / MEMORY_FILE, why + "\n")
                try:  # the restart's reason says "OOM-killed"; the log says by whom and why
                    with open(Path(request["trial_dir"]) / "log.txt", "a", encoding="utf-8") as log:
                        log.write(f"mlci warm worker: {why} ([resources] memory): ended it\n")
                except OSError:
                    pass
                try:
                    os.killpg(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass

    def fork(self, request: dict[str, Any]) -> int:
        trial_dir = Path(request["trial_dir"])
        import_more(request.get("modules", ()))
        self.reap()  # an earlier attempt of this trial writes its end before the next one starts
        for name in (EXIT_FILE, MEMORY_FILE, IDENTITY_FILE):
            (trial_dir / name).unlink(missing_ok=True)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _become_trial(request, self.private, self.start_cwd)  # never returns
        self.children[pid] = request
        _write(trial_dir / IDENTITY_FILE, json.dumps({"pid": pid, "start_ticks": start_ticks(pid),
                                                      "worker": os.getpid()}) + "\n")
        return pid

    def wake_on_children(self) -> int:
        """A child's end wakes the serving loop at once (SIGCHLD -> a wakeup pipe, whose read end is returned):
        its exit code is written before a runner that saw it die looks for it."""
        wake_read, wake_write = os.pipe()
        os.set_blocking(wake_write, False)
        signal.set_wakeup_fd(wake_write)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        self.private += [wake_read, wake_write]
        return wake_read

    def tend(self, wake: int, readable: list) -> None:
        """After each wait: write how ended children ended, end one past its memory limit, empty the wakeup pipe."""
        self.reap()
        self.watch_memory()
        if wake in readable:
            os.read(wake, 4096)

    def serve(self, requests: int) -> None:
        wake = self.wake_on_children()
        pending = b""
        while True:
            readable, _, _ = select.select([requests, wake], [], [], WATCH_SECONDS)
            self.tend(wake, readable)
            if requests not in readable:
                continue
            chunk = os.read(requests, 65536)
            if not chunk:
                return  # the runner's process ended: its trials go on in their own sessions
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                self.handle(line)

    def handle(self, line: bytes, to: int | None = None) -> None:
        try:
            self.answer({"pid": self.fork(json.loads(line))}, to)
        except Exception as exc:  # a bad request or no fork: the runner raises it as a RunnerError
            self.answer({"error": f"{type(exc).__name__}: {exc}"}, to)


def run_mlci(args: list[str]) -> int:
    """`mlci ARGS` in this process, as its own process would run it: its exit status."""
    from mlci.cli import main

    sys.argv = ["mlci", *args]
    try:
        main(args=args, prog_name="mlci")
    except SystemExit as end:
        if end.code is None or isinstance(end.code, int):
            return end.code or 0
        return 1
    return 0


def _become_trial(request: dict[str, Any], private: list[int], start_cwd: str) -> None:
    """In the forked child: become what `python -m mlci train ...` would be, run it, and exit with its code."""
    code = 1
    try:
        signal.set_wakeup_fd(-1)  # the wakeup pipe is the worker's: closed below with the protocol's descriptors
        # The protocol's descriptors first: a daemon's listening socket held by a trial would take connections
        # that no one accepts once the daemon is gone.
        for fd in private:
            if fd > 2:
                try:
                    os.close(fd)
                except OSError:
                    pass
        os.setsid()  # its own session: LocalRunner.kill takes the trial's process group, never the worker
        log = os.open(Path(request["trial_dir"]) / "log.txt", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        for fd in (log, null):
            if fd > 2:
                try:
                    os.close(fd)
                except OSError:
                    pass
        for number in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD, signal.SIGPIPE):
            signal.signal(number, signal.SIG_DFL if number != signal.SIGINT else signal.default_int_handler)
        os.chdir(request["cwd"])
        if sys.path and sys.path[0] == start_cwd:
            sys.path[0] = request["cwd"]  # as `python -m mlci train` started in the trial's cwd has it
        os.environ.clear()
        os.environ.update(request["env"])
        sys.stdout.reconfigure(write_through=True)  # PYTHONUNBUFFERED, as a fresh trial process has it
        sys.stderr.reconfigure(write_through=True)
        code = run_mlci(request["args"])
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


class Daemon:
    """The worker kept warm between runs: listens on a unix socket (in a folder only its user can enter), greets
    each connection with "ready" once the framework is imported, forks what each connection asks, and ends
    after `idle` seconds with no connection and no trial of its own."""

    def __init__(self, path: str, idle: float):
        self.path = path
        self.idle = idle
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)  # before the import: a connection waits in the backlog for "ready"
        self.listener.listen(64)
        self.identity = os.stat(path).st_ino  # a newer daemon's socket at this path is not ours to remove
        self.clients: dict[int, tuple[socket.socket, bytearray]] = {}
        self.worker = Worker(-1)
        self.worker.private = [self.listener.fileno()]
        self.ready: dict[str, Any] = {}
        self.served = 0

    def greet(self) -> None:
        connection, _ = self.listener.accept()
        uid = struct_unpack_uid(connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
        if uid not in (os.getuid(), 0):
            connection.close()  # the folder is the user's alone; this is a second lock on the door
            return
        self.clients[connection.fileno()] = (connection, bytearray())
        self.worker.private.append(connection.fileno())
        self.worker.answer({**self.ready, "served": self.served}, connection.fileno())

    def hear(self, fd: int) -> None:
        connection, pending = self.clients[fd]
        try:
            chunk = connection.recv(65536)
        except OSError:
            chunk = b""
        if not chunk:  # that run ended: its trials go on, and this worker stays for the next run
            del self.clients[fd]
            self.worker.private.remove(fd)
            connection.close()
            return
        pending += chunk
        while b"\n" in pending:
            line, _, rest = bytes(pending).partition(b"\n")
            pending[:] = rest
            self.served += 1
            try:
                self.worker.handle(line, fd)
            except OSError:
                pass  # the run went away before its answer: it sees the trial in its folder, or restarts it

    def serve(self) -> None:
        wake = self.worker.wake_on_children()
        busy = time.monotonic()
        while True:
            readable, _, _ = select.select([self.listener, wake, *self.clients], [], [], WATCH_SECONDS)
            self.worker.tend(wake, readable)
            if self.listener in readable:
                self.greet()
            for fd in readable:
                if fd in self.clients:
                    self.hear(fd)
            if self.clients or self.worker.children:
                busy = time.monotonic()
            elif time.monotonic() - busy > self.idle:
                return

    def remove(self) -> None:
        """Take this daemon's socket away, unless a newer daemon's is at the path by now."""
        try:
            if os.stat(self.path).st_ino == self.identity:
                os.unlink(self.path)
        except OSError:
            pass


def struct_unpack_uid(credentials: bytes) -> int:
    import struct

    return struct.unpack("3i", credentials)[1]  # struct ucred: pid, uid, gid


def daemon_main(path: str, idle: float, framework: str, modules: list[str]) -> None:
    daemon = Daemon(path, idle)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda signum, frame: (daemon.remove(), os._exit(0)))
    try:
        seconds = preload(framework, modules)
        daemon.ready = {"ready": True, "pid": os.getpid(), "import_seconds": round(seconds, 3), "daemon": True}
    except BaseException as exc:
        daemon.ready = {"error": f"importing {framework} failed: {type(exc).__name__}: {exc}"}
        daemon.remove()
        while True:  # tell the runs that already connected why, then end
            readable, _, _ = select.select([daemon.listener], [], [], 0)
            if not readable:
                break
            daemon.greet()
        raise
    try:
        daemon.serve()
    finally:
        daemon.remove()
    daemon.worker.reap()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def main(argv: list[str] | None = None) -> None:
    argv = argv if argv is not None else sys.argv[1:] or ["keras"]
    if argv[0] == "--daemon":
        _, path, idle, framework, *modules = argv
        daemon_main(path, float(idle), framework, modules)
        return
    framework, *modules = argv
    answers = os.dup(1)
    os.dup2(2, 1)  # whatever the imports print goes to stderr; fd `answers` carries only the protocol
    sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in the terminal is for `mlci run`; stdin's end stops us
    worker = Worker(answers)
    try:
        seconds = preload(framework, modules)
    except BaseException as exc:
        worker.answer({"error": f"importing {framework} failed: {type(exc).__name__}: {exc}"})
        raise
    worker.answer({"ready": True, "pid": os.getpid(), "import_seconds": round(seconds, 3)})
    worker.serve(0)
    worker.reap()  # the trials that ended meanwhile get their exit code; the others go on in their sessions
    # Nothing of the worker needs tearing down: skip the interpreter's teardown of the framework (TensorFlow
    # takes about a second), which `mlci run`'s end would wait for.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
