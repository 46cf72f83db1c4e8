"""Run a command in a container, copying its output to the trial's log file and to stdout.

The log file survives the mlci process that started the container; stdout keeps `docker logs` useful.
The log is capped (a script printing in a loop filled 200 MB): at MLCI_LOG_MAX_BYTES (default 50 MiB) log.txt
is rotated to log.1.txt (the older part dropped) and starts again with a note, so a trial keeps at most twice that.
Usage: python -m mlci.runners.logtee LOG_FILE -- COMMAND [ARGS...]; exits with the command's status.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

LOG_MAX_ENV = "MLCI_LOG_MAX_BYTES"
LOG_MAX_DEFAULT = 50 * 1024 * 1024
LOG_MAX_FLOOR = 4096  # smaller would rotate on every line


def log_max_bytes() -> int:
    try:
        value = int(os.environ.get(LOG_MAX_ENV) or LOG_MAX_DEFAULT)
    except ValueError:
        return LOG_MAX_DEFAULT
    return max(value, LOG_MAX_FLOOR)


class CappedLog:
    """An append-only log file that never grows past `limit` bytes: the full file moves to <name>.1.<ext>
    (replacing an older one) and the log starts again with a line that says so."""

    def __init__(self, path: str | Path, limit: int | None = None):
        self.path = Path(path)
        self.limit = limit or log_max_bytes()
        self.rotated = self.path.with_name(f"{self.path.stem}.1{self.path.suffix}")
        self.handle = open(self.path, "ab", buffering=0)
        self.size = self.handle.tell()

    def write(self, chunk: bytes) -> None:
        while chunk:
            room = self.limit - self.size
            if room <= 0:
                self._rotate()
                continue
            # cut at a line break where one is near, so a line is rarely split across the two files
            part = chunk[:room]
            if len(chunk) > room:
                cut = part.rfind(b"\n")
                part = part[:cut + 1] if cut >= room // 2 else part
            self.handle.write(part)
            self.size += len(part)
            chunk = chunk[len(part):]

    def _rotate(self) -> None:
        self.handle.close()
        os.replace(self.path, self.rotated)
        self.handle = open(self.path, "ab", buffering=0)
        note = (f"mlci: log.txt reached {self.limit} bytes ({LOG_MAX_ENV}); the previous part is in "
                f"{self.rotated.name}, anything older was dropped\n").encode()
        self.handle.write(note)
        self.size = len(note)

    def close(self) -> None:
        self.handle.close()

    def __enter__(self) -> "CappedLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def cap_appended_log(path: str | Path, limit: int | None = None) -> bool:
    """Rotate a log that another process appends to (a local or warm trial's log.txt, opened with O_APPEND):
    past `limit`, its content moves to <name>.1.<ext> and the file is truncated in place with a note. The
    writer keeps its file descriptor: O_APPEND puts its next line at the new end. Called by whoever watches
    the trial (mlci run, mlci wait, the monitor) about once a second, so the log stays within the cap plus
    what the trial prints in that second; lines printed between the copy and the truncation are the only loss.
    Returns whether it rotated."""
    path = Path(path)
    limit = limit or log_max_bytes()
    try:
        if path.stat().st_size <= limit:
            return False
        rotated = path.with_name(f"{path.stem}.1{path.suffix}")
        with open(path, "r+b") as source:
            with open(rotated, "wb") as target:
                while chunk := source.read(1 << 20):
                    target.write(chunk)
            source.truncate(0)
        with open(path, "ab") as log:
            log.write(f"mlci: log.txt passed {limit} bytes ({LOG_MAX_ENV}); the previous part is in "
                      f"{rotated.name}, anything older was dropped\n".encode())
    except OSError:
        return False  # a log is never worth failing a trial over
    return True


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: python -m mlci.runners.logtee LOG_FILE -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    log_path, command = argv[0], argv[2:]
    with CappedLog(log_path) as log:
        try:
            child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        except OSError as exc:
            message = f"mlci: cannot start {command[0]}: {exc}\n".encode()
            log.write(message)
            sys.stdout.buffer.write(message)
            return 127
        # `docker stop` signals us (PID 1's child): pass it on and let the command end its own way.
        for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(number, lambda signum, frame: child.send_signal(signum))
        tee(child.stdout.fileno(), log)
        code = child.wait()
    return exit_status(code)


def tee(fd: int, log: CappedLog) -> None:
    """Copy what comes out of `fd` to the log and to stdout (`docker logs`), until its writers close it."""
    out = sys.stdout.buffer
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            return
        log.write(chunk)
        out.write(chunk)
        out.flush()


def exit_status(code: int) -> int:
    """A child's return code as a shell reports it: a signal N is 128 + N."""
    return 128 - code if code < 0 else code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
