"""The standby entry point (`python -m mlci.runners.standby FRAMEWORK [MODULE ...]`): a trial's container, started
before its trial, imports the framework while the previous trial trains and then waits for the trial.

Runs inside a container of the Docker runner (mlci.runners.docker_standby starts it on an empty standby folder
mounted at /trial). It imports what warm_worker.preload imports, then waits for the go file that the runner
writes into /trial after it has exchanged the standby folder with the trial's folder. Then it does what a trial
container's own command does (`python -m mlci.runners.logtee /trial/log.txt -- mlci train ...`): the `mlci train`
is a child forked from this pre-imported process (as a warm worker's trial is), its output copied to
/trial/log.txt and to stdout, and the container ends with its exit status. It trains that one trial, never another.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

GO_FILE = ".mlci-go.json"  # in /trial: {"args": [...], "env": {...}, "cwd": "/trial/work", "log": "/trial/log.txt"}
READY_LINE = "mlci standby: ready"  # on stdout (`docker logs`) once the imports are done
POLL_SECONDS = 0.02
TRIAL_MOUNT = "/trial"  # = mlci.runners.docker.TRIAL_MOUNT (that module needs the Docker SDK; this one must not)


def wait_for_go(folder: Path, poll: float = POLL_SECONDS) -> dict[str, Any]:
    """Block until the runner hands over a trial; the go file is read once and removed."""
    path = folder / GO_FILE
    while True:
        try:
            request = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            time.sleep(poll)
            continue
        path.unlink(missing_ok=True)
        return request


def run_trial(request: dict[str, Any]) -> int:
    """logtee's work with `mlci ARGS` forked from this process: the trial's exit status (128 + N for signal N)."""
    from mlci.runners.logtee import CappedLog, exit_status, tee

    with CappedLog(request["log"]) as log:
        read_fd, write_fd = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            os.close(read_fd)
            _become_trial(request, write_fd)  # never returns
        os.close(write_fd)
        # `docker stop` signals us (PID 1's child): pass it on and let the trial end its own way, as logtee does.
        for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(number, lambda signum, frame: os.kill(pid, signum))
        tee(read_fd, log)
        _, status = os.waitpid(pid, 0)
    return exit_status(os.waitstatus_to_exitcode(status))


def _become_trial(request: dict[str, Any], output: int) -> None:
    """In the forked child: become the `mlci train ...` process of a trial container, run it, exit with its code."""
    status = 1
    try:
        null = os.open(os.devnull, os.O_RDONLY)
        for fd, into in ((null, 0), (output, 1), (output, 2)):
            os.dup2(fd, into)
        os.close(null)
        os.close(output)
        for number in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(number, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.environ.update(request["env"])  # the trial's LaunchSpec.env; the container's own is the same as today's
        os.chdir(request["cwd"])  # the work area made at hand-over (the one at the container's start was replaced)
        sys.stdout.reconfigure(write_through=True)  # PYTHONUNBUFFERED, as in a trial container's `mlci train`
        sys.stderr.reconfigure(write_through=True)
        from mlci.runners.warm_worker import run_mlci

        status = run_mlci(request["args"])
    except BaseException:
        traceback.print_exc()
    with contextlib.suppress(BaseException):  # nothing may return from here into the standby's own code
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(status)


def main(argv: list[str] | None = None) -> int:
    framework, *modules = argv if argv is not None else sys.argv[1:] or ["keras"]
    from mlci.runners.warm_worker import preload

    seconds = preload(framework, modules)
    print(f"{READY_LINE} ({framework} imported in {seconds:.2f}s); waiting for a trial", flush=True)
    return run_trial(wait_for_go(Path(TRIAL_MOUNT)))


if __name__ == "__main__":
    status = main()
    # Nothing here needs tearing down (the log is closed): skip the interpreter's teardown of the framework
    # (about a second for TensorFlow), which the container's end, and so the trial's, would wait for.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
