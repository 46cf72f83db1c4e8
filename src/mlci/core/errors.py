"""Errors a user can cause, each with the exit code the CLI turns it into.

Every message says what was wrong, where (file, line, key) and what to do; the CLI prints it
as one line on stderr. A traceback is for bugs only.
"""
from __future__ import annotations

import os
import re

# Exit codes are part of the interface: Jenkins reads them. Documented in `mlci --help` and README.
EXIT_OK = 0
EXIT_INTERNAL = 1  # a bug: unexpected exception (traceback printed)
EXIT_USAGE = 2  # wrong call or invalid configuration / input file
EXIT_BELOW_THRESHOLD = 3  # metric below the threshold / budget spent without meeting it (Jenkins: UNSTABLE)
EXIT_DETECTION = 4  # model code unreadable or of an unsupported kind
EXIT_TRIAL_FAILED = 5  # training failed (build_model raised, process died, crash loop)
EXIT_METRICS = 6  # metrics missing or corrupt
EXIT_RUNNER = 7  # runner unavailable (no Docker engine, image missing)
EXIT_NOTIFY = 8  # a notification could not be delivered (kept in the outbox)
EXIT_BUSY = 9  # another process holds the run's lock
EXIT_INTERRUPTED = 130  # SIGINT / SIGTERM

EXIT_CODES = {
    EXIT_OK: "success: threshold met, or the command did what it was asked",
    EXIT_INTERNAL: "internal error (a bug: please report the traceback)",
    EXIT_USAGE: "usage or configuration error",
    EXIT_BELOW_THRESHOLD: "metric below the threshold (budget spent without meeting it); the Jenkins jobs' "
                          "unstable-return: UNSTABLE",
    EXIT_DETECTION: "model kind could not be detected or is unsupported",
    EXIT_TRIAL_FAILED: "a trial failed to train",
    EXIT_METRICS: "metrics missing or corrupt",
    EXIT_RUNNER: "runner unavailable (Docker engine, image)",
    EXIT_NOTIFY: "notification not delivered (kept in the outbox; retry with `mlci notify --flush`)",
    EXIT_BUSY: "the run is locked by another mlci process",
    EXIT_INTERRUPTED: "interrupted (SIGINT/SIGTERM); the run store is consistent, run again to continue",
}


class MlciError(Exception):
    """Base of every error a user can cause. `str(err)` is the one-line message."""

    exit_code = EXIT_INTERNAL

    def __init__(self, message: str, *, hint: str | None = None):
        self.message = message
        self.hint = hint
        super().__init__(self.one_line())

    def one_line(self) -> str:
        text = self.message if not self.hint else f"{self.message}; {self.hint}"
        return redact(" ".join(text.split()))


class UsageError(MlciError):
    exit_code = EXIT_USAGE


class ConfigError(MlciError):
    exit_code = EXIT_USAGE


class DetectionError(MlciError):
    exit_code = EXIT_DETECTION


class TrialError(MlciError):
    exit_code = EXIT_TRIAL_FAILED


class MetricsError(MlciError):
    exit_code = EXIT_METRICS


class RunnerError(MlciError):
    exit_code = EXIT_RUNNER


class NotifyError(MlciError):
    exit_code = EXIT_NOTIFY


class BusyError(MlciError):
    exit_code = EXIT_BUSY


def trial_failure(message: str, exit_code: int | None, *, hint: str | None = None) -> MlciError:
    """The error a failed trial ends a command with: 6 when it trained but its metric is missing, else 5."""
    return (MetricsError if exit_code == EXIT_METRICS else TrialError)(message, hint=hint)


class StoreError(MlciError, OSError):
    """The run store cannot be read or written (permissions, a file where a folder belongs, a full disk).

    Also an OSError, so code that tolerates a failed write (a heartbeat, a log) still does.
    """

    exit_code = EXIT_USAGE


# Environment variables whose values are secrets: never shown in a message, whatever put them there.
SECRET_ENVS = ("MLCI_SMTP_PASSWORD", "JENKINS_API_TOKEN", "MLCI_WEBHOOK_URL")
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]*@")


def redact(text: str) -> str:
    """`text` without secrets: credentials inside URLs (scheme://user:token@host) and secret variables' values."""
    text = _URL_CREDENTIALS.sub(lambda m: f"{m['scheme']}***@", text)
    for name in SECRET_ENVS:
        secret = os.environ.get(name) or ""
        if len(secret) >= 4:  # a one-letter "secret" would blank out every message
            text = text.replace(secret, "***")
    return text
