"""Why a trial ended badly, and whether starting it again can help: one classification for every caller.

A kill, an OOM kill or a lost host is transient: the lifecycle (for `mlci run`, `mlci wait` and the
monitor alike) restarts the trial from its checkpoint. A deterministic failure (a syntax, import or
permission error, the harness's own diagnosis, the same exception twice, a limit mlci enforced) fails
the trial at once with its one-line reason: restarting it would only fail again, slower. And a trial
that makes no progress is stopped (`limit_reached`).
"""
from __future__ import annotations

import json
import re
import time
from datetime import datetime
from dataclasses import dataclass
from typing import Sequence

from mlci.core.config import Config
from mlci.core.errors import EXIT_DETECTION, EXIT_METRICS, EXIT_TRIAL_FAILED, EXIT_USAGE
from mlci.core.store import CRASH_FILE, STOP_FILE, Restart, Run, Trial, TrialState
from mlci.runners.base import Status

DIAGNOSED_EXITS = {EXIT_USAGE, EXIT_DETECTION, EXIT_TRIAL_FAILED, EXIT_METRICS}
# Exceptions that the same code on the same input raises every time: a restart cannot help.
DETERMINISTIC = {"SyntaxError", "IndentationError", "TabError", "ImportError", "ModuleNotFoundError",
                 "PermissionError", "NameError", "UnboundLocalError"}
_EXCEPTION_NAME = re.compile(r"[A-Za-z_][\w.]*")


@dataclass(frozen=True)
class Failure:
    """A classified end: `transient` ones are restarted (within max_restarts); the rest fail the trial now."""

    transient: bool
    reason: str  # one line, for trial.json and the run's verdict
    signature: str | None = None  # "ValueError: bad shape": an exception seen twice is deterministic


def crash_signature(trial: Trial) -> str | None:
    """`Type: message` of the exception that ended the latest attempt (the harness's record, else the log)."""
    try:
        crash = json.loads((trial.dir / CRASH_FILE).read_text(encoding="utf-8"))
        return f"{crash['type']}: {crash['message']}".rstrip(": ").strip()
    except (OSError, ValueError, KeyError, TypeError):
        pass
    try:
        with open(trial.log_path, "rb") as handle:
            handle.seek(0, 2)
            handle.seek(max(handle.tell() - 65536, 0))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return None
    at = text.rfind("Traceback (most recent call last):")
    if at < 0:
        return None
    for line in text[at:].splitlines()[1:]:
        if line and not line[0].isspace():
            name, _, message = line.strip().partition(":")
            if _EXCEPTION_NAME.fullmatch(name):
                return f"{name.rsplit('.', 1)[-1]}: {' '.join(message.split())[:300]}".rstrip(": ").strip()
            return None
    return None


def _log_tail(trial: Trial, lines: int = 3) -> str:
    try:
        text = trial.log_path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    kept = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return " | ".join(kept[-lines:])[-400:]


def _diagnosis(trial: Trial) -> str | None:
    error_file = trial.dir / "error.txt"
    try:
        text = error_file.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None
    return text or None


def failure_reason(trial: Trial, status: Status) -> str:
    """Why a trial ended badly, in one line: the harness's own diagnosis, else the status and the log's end."""
    if status.state == "stopped":
        return status.reason or "stopped by mlci"
    diagnosis = _diagnosis(trial)
    if diagnosis:
        return diagnosis
    tail = _log_tail(trial)
    return f"{status.reason or status.state}" + (f"; last log lines: {tail}" if tail else "")


def classify(trial: Trial, status: Status, restarts: Sequence[Restart] = ()) -> Failure:
    """Transient (restart from the checkpoint) or deterministic (fail now), with the one-line reason."""
    if status.state in ("killed", "oom", "missing"):
        reason = "OOM-killed" if status.state == "oom" else (status.reason or status.state)
        return Failure(True, reason)
    if status.state == "stopped":
        return Failure(False, failure_reason(trial, status))
    if status.state == "exited" and status.exit_code == 0:
        return Failure(False, "exited 0 without writing metrics.json")
    if status.exit_code in DIAGNOSED_EXITS and _diagnosis(trial):
        return Failure(False, failure_reason(trial, status))
    signature = crash_signature(trial)
    if signature is not None:
        kind = signature.split(":", 1)[0]
        if kind in DETERMINISTIC:
            return Failure(False, f"{signature} ({kind} is deterministic: not restarted)", signature)
        if restarts and restarts[-1].failure == signature:
            return Failure(False, f"the same exception twice: {signature} (not restarted again)", signature)
        return Failure(True, f"{status.reason or status.state} ({signature})", signature)
    return Failure(True, status.reason or status.state)


# ----------------------------------------------------------------------------- liveness


def progress_at(trial: Trial, state: TrialState) -> float:
    """Unix time of the trial's last sign of progress: its (re)launch, a log line, a finished epoch.

    Not the heartbeat: its thread beats on while the script sleeps or hangs.
    """
    times = [state.launched_at or 0.0]
    for path in (trial.log_path, *trial.checkpoints.glob("*.jsonl")):
        try:
            times.append(path.stat().st_mtime)
        except OSError:
            pass
    return max(times)


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f}s"


def limit_reached(run: Run, trial: Trial, state: TrialState, config: Config, now: float | None = None) -> str | None:
    """Why a running trial must be stopped now (one line), or None.

    stall_minutes: no new epoch or log line; trial_minutes: since its first launch; max_minutes: the
    run's deadline, which first asks the harness to stop after the epoch it is in (the checkpoint and
    metrics are written), and stops it outright when that has not happened within heartbeat_timeout.
    """
    now = time.time() if now is None else now
    if config.stall_minutes is not None:
        quiet = now - progress_at(trial, state)
        if quiet > config.stall_minutes * 60:
            return (f"stopped: no progress for {_minutes(quiet)} (no new epoch or log line; "
                    f"stall_minutes = {config.stall_minutes:g})")
    if config.trial_minutes is not None and state.started_at:
        ran = now - datetime.fromisoformat(state.started_at).timestamp()
        if ran > config.trial_minutes * 60:
            return f"stopped: the trial ran {_minutes(ran)}, past trial_minutes = {config.trial_minutes:g}"
    if config.max_minutes is not None:
        deadline = datetime.fromisoformat(run.record().created_at).timestamp() + config.max_minutes * 60
        if now >= deadline:
            request = trial.dir / STOP_FILE
            try:
                asked = request.stat().st_mtime
            except OSError:
                request.write_text(f"max_minutes = {config.max_minutes:g} reached\n", encoding="utf-8")
                return None
            if now - asked > config.monitor.heartbeat_timeout:
                return (f"stopped: the run's max_minutes ({config.max_minutes:g}) ran out and the trial did not end "
                        f"within {config.monitor.heartbeat_timeout:g}s of being asked to")
    return None
