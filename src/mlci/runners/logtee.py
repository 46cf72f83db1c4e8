"""Run a command in a container, copying its output to the trial's log file and to stdout.

The log file survives the mlci process that started the container; stdout keeps `docker logs` useful.
Usage: python -m mlci.runners.logtee LOG_FILE -- COMMAND [ARGS...]; exits with the command's status.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: python -m mlci.runners.logtee LOG_FILE -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    log_path, command = argv[0], argv[2:]
    with open(log_path, "ab", buffering=0) as log:
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
        out = sys.stdout.buffer
        while True:
            chunk = os.read(child.stdout.fileno(), 65536)
            if not chunk:
                break
            log.write(chunk)
            out.write(chunk)
            out.flush()
        code = child.wait()
    return 128 - code if code < 0 else code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
