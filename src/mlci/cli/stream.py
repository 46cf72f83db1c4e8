"""The trial's console, live: `mlci wait` (job 3) and `mlci launch --wait` copy the trial's log.txt to
their own output as it grows (each epoch's line with its metric, the trial's own prints) and say restarts.

Without a terminal (a Jenkins console, a pipe) progress-bar redraws are reduced to their final text: no
escape codes, no carriage returns, no backspaces.
"""
from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Callable

# CSI (colours, cursor moves), OSC (titles, links) and the two-byte escapes terminals understand
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")


def plain_line(text: str) -> str:
    """One log line as a file shows it: escape codes removed, a carriage-return redraw kept as its last state."""
    text = _ESCAPES.sub("", text)
    if "\r" in text:
        parts = [part for part in text.split("\r") if part.strip()]
        text = parts[-1] if parts else ""
    kept: list[str] = []
    for ch in text:
        if ch == "\x08":  # a backspace erases the character before it
            if kept:
                kept.pop()
        elif ch == "\t" or ch >= " ":
            kept.append(ch)
    return "".join(kept).rstrip()


class LogFollower:
    """Copies a growing log file to `echo`, line by line, from a background thread while the trial runs.

    Used as the `events` of lifecycle.follow: restarts and other notices are printed in order with the log.
    """

    def __init__(self, log_path: Path, echo: Callable[[str], None], *, raw: bool = False, poll: float = 0.2):
        self.log_path = log_path
        self.echo = echo
        self.raw = raw  # a terminal: the lines as written (progress bars redraw in place)
        self.poll = poll
        self.offset = 0
        self.partial = b""
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="mlci-log-follower", daemon=True)

    def __enter__(self) -> "LogFollower":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)
        self.drain(final=True)

    def _loop(self) -> None:
        while not self.stopped.wait(self.poll):
            self.drain()

    def drain(self, final: bool = False) -> None:
        """Print every complete line written since the last look (at the end, the unfinished one too)."""
        with self.lock:
            try:
                with open(self.log_path, "rb") as handle:
                    handle.seek(self.offset)
                    chunk = handle.read()
            except OSError:  # not written yet
                return
            self.offset += len(chunk)
            data = self.partial + chunk
            lines = data.split(b"\n")
            self.partial = lines.pop()
            if final and self.partial:
                lines.append(self.partial)
                self.partial = b""
            for line in lines:
                text = line.decode("utf-8", errors="replace")
                text = text.rstrip("\r") if self.raw else plain_line(text)
                if text.strip():
                    self.echo(text)

    # ------------------------------------------------------------------ lifecycle.follow's events

    def notice(self, text: str) -> None:
        self.drain()  # what the trial printed before it died comes first
        self.echo(f"mlci: {plain_line(text)}")

    def trial_finished(self, trial, metrics, state) -> None:
        self.drain(final=True)
