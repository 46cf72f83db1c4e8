"""Notifications (job 5): tell people the best model is ready, or that the budget ran out.

Each message is written to the run's outbox/ first, then sent through every configured channel
(email over SMTP, a JSON webhook), then marked sent there: nothing is lost, nothing is sent twice.
"""
from __future__ import annotations

import base64
import html
import json
import os
import smtplib
import socket
import ssl
import time
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, getaddresses, make_msgid
from pathlib import Path
from typing import Any, Callable, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field

from mlci import __version__
from mlci.core.config import NotifyConfig
from mlci.core.objective import Objective
from mlci.core.states import DoneReason, RunStatus, TrialStatus
from mlci.core.errors import ConfigError, MlciError, NotifyError, UsageError
from mlci.integrations.report import trial_rows
from mlci.core.store import Record, Run, RunRecord, RunStore, file_lock, now_iso, read_record, write_json

EVENTS = ("success", "budget-exhausted", "trial-failed", "pipeline-error")
# A run written before the oracle recorded its reason: the event its status implies.
_STATUS_REASONS = {RunStatus.MET: DoneReason.MET, RunStatus.EXHAUSTED: DoneReason.BUDGET,
                   RunStatus.FAILED: DoneReason.ERROR}
PASSWORD_ENV = "MLCI_SMTP_PASSWORD"
WEBHOOK_ENV = "MLCI_WEBHOOK_URL"  # Slack-style URLs carry their secret in the path
MAX_BACKOFF = 60.0
LOCK_WAIT = 300.0
LOOPBACK = ("127.0.0.1", "::1", "localhost")

Echo = Callable[[str], None]


# ----------------------------------------------------------------------------- records


class Delivery(BaseModel):
    status: Literal["pending", "sent"] = "pending"
    attempts: int = 0
    last_error: str | None = None
    sent_at: str | None = None
    sent_to: str | None = None


class OutboxMessage(Record):
    """One notification (outbox/<key>.json): what is said, and where it has been delivered."""

    key: str  # the event, or trial-failed-<n>: one message per (run, key), ever
    event: str
    run_id: str
    subject: str
    text: str
    html: str
    payload: dict[str, Any]  # the webhook's JSON body
    message_id: str
    attachment: str | None = None  # the PNG's name; its bytes live in the email text
    email: str | None = None  # the whole RFC 5322 message, built once, sent as is
    email_from: str | None = None
    email_rcpt: list[str] = Field(default_factory=list)
    created_at: str = Field(default_factory=now_iso)
    deliveries: dict[str, Delivery] = Field(default_factory=dict)

    def pending(self) -> list[str]:
        return [name for name, delivery in self.deliveries.items() if delivery.status == "pending"]


@dataclass
class NotifyResult:
    """What a call did; `pending` lists what stays in the outbox for `mlci notify --flush`."""

    sent: list[str] = field(default_factory=list)  # "<run>/<key> by <channel> to <where>"
    pending: list[str] = field(default_factory=list)
    already_sent: list[str] = field(default_factory=list)
    console_only: list[str] = field(default_factory=list)
    messages: list[Path] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.pending

    def merge(self, other: "NotifyResult") -> None:
        for name in ("sent", "pending", "already_sent", "console_only", "messages", "errors"):
            getattr(self, name).extend(getattr(other, name))


# ----------------------------------------------------------------------------- channel errors


class _Failure(Exception):
    """A channel's delivery failed; `transient` ones are retried with backoff."""

    def __init__(self, line: str, *, transient: bool):
        super().__init__(line)
        self.line = line
        self.transient = transient


def _scrub(text: str, secrets: list[str]) -> str:
    """Remove a password (and its base64 forms, as AUTH PLAIN/LOGIN send it) from a message."""
    for secret in [s for s in secrets if s]:
        forms = {secret, base64.b64encode(secret.encode()).decode()}
        for form in forms:
            text = text.replace(form, "***")
    return " ".join(text.split())


def _smtp_reply(exc: smtplib.SMTPResponseException) -> str:
    reply = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
    return f"{exc.smtp_code} {reply}"


# ----------------------------------------------------------------------------- notifiers


class Notifier(ABC):
    """A channel. `send` raises _Failure; the caller retries transient ones and keeps the outbox."""

    name = "channel"

    def __init__(self, config: NotifyConfig):
        self.config = config

    def prepare(self, message: OutboxMessage, attachment: bytes | None) -> bool:
        """Add what this channel needs to the stored message before anything is sent; True if changed."""
        return False

    @abstractmethod
    def send(self, message: OutboxMessage) -> str:
        """Deliver the message; returns where it went, in words without secrets."""


class EmailNotifier(Notifier):
    """SMTP with STARTTLS, implicit TLS or none; the password only from MLCI_SMTP_PASSWORD."""

    name = "email"

    def __init__(self, config: NotifyConfig):
        super().__init__(config)
        if not config.to:
            raise ConfigError("[notify] smtp_host is set but 'to' is empty",
                              hint="add to = [\"dev@example.com\"] to [notify] in mlci.toml")
        self.password = os.environ.get(PASSWORD_ENV) or None
        self.where = f"{config.smtp_host}:{config.smtp_port}"

    def sender(self) -> str:
        if self.config.from_:
            return self.config.from_
        if self.config.smtp_user and "@" in self.config.smtp_user:
            return self.config.smtp_user
        return f"mlci@{socket.getfqdn()}"

    def prepare(self, message: OutboxMessage, attachment: bytes | None) -> bool:
        if message.email is not None:
            return False
        mail = EmailMessage(policy=SMTP_POLICY)
        try:
            mail["Subject"] = message.subject
            mail["From"] = self.sender()
            mail["To"] = ", ".join(self.config.to)
            if self.config.cc:
                mail["Cc"] = ", ".join(self.config.cc)
        except ValueError as exc:  # the email package refuses CR/LF in any header value
            raise ConfigError(f"[notify] a header value is invalid ({exc})",
                              hint="addresses and names must be single lines") from None
        mail["Date"] = format_datetime(datetime.now(timezone.utc))
        mail["Message-ID"] = message.message_id
        mail["X-Mlci-Run"] = message.run_id
        mail["X-Mlci-Event"] = message.event
        mail.set_content(message.text)
        mail.add_alternative(message.html, subtype="html")
        if attachment is not None and message.attachment:
            mail.add_attachment(attachment, maintype="image", subtype="png", filename=message.attachment)
        message.email = mail.as_bytes().decode("ascii")
        message.email_from = self.sender()
        message.email_rcpt = [address for _, address in getaddresses([*self.config.to, *self.config.cc])]
        return True

    def _connect(self, context: ssl.SSLContext | None) -> smtplib.SMTP:
        host, port, timeout = self.config.smtp_host, self.config.smtp_port, self.config.timeout
        if self.config.security == "ssl":
            return smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
        return smtplib.SMTP(host, port, timeout=timeout)

    def send(self, message: OutboxMessage) -> str:
        config = self.config
        if message.email is None or not message.email_rcpt:
            raise _Failure("the stored message has no email part", transient=False)
        if config.smtp_user and config.security == "none" and config.smtp_host not in LOOPBACK:
            raise _Failure(f"smtp_user is set with security = \"none\": the password would cross the network "
                           "in clear text; use security = \"starttls\" or \"ssl\"", transient=False)
        if config.smtp_user and not self.password:
            raise _Failure(f"smtp_user '{config.smtp_user}' is set but {PASSWORD_ENV} is not; export it "
                           f"(in Jenkins bind the SMTP credential to {PASSWORD_ENV})", transient=False)
        try:
            # loading the system's CA store costs ~17 ms: only where TLS is used
            context = ssl.create_default_context(cafile=config.ca_file) if config.security != "none" else None
        except (OSError, ssl.SSLError) as exc:
            raise _Failure(f"[notify] ca_file '{config.ca_file}' cannot be loaded ({exc})", transient=False) from None
        secrets = [self.password or ""]
        try:
            with self._connect(context) as client:
                client.ehlo()
                if config.security == "starttls":
                    if not client.has_extn("starttls"):
                        raise _Failure(f"SMTP {self.where} does not offer STARTTLS; use security = \"ssl\" "
                                       "for port 465, or \"none\" on a trusted network", transient=False)
                    client.starttls(context=context)
                    client.ehlo()
                if config.smtp_user:
                    client.login(config.smtp_user, self.password or "")
                refused = client.sendmail(message.email_from, message.email_rcpt, message.email.encode("ascii"))
        except _Failure:
            raise
        except smtplib.SMTPAuthenticationError as exc:
            raise _Failure(_scrub(f"SMTP {self.where} refused the login of '{config.smtp_user}' "
                                  f"({_smtp_reply(exc)}); check smtp_user and {PASSWORD_ENV}", secrets),
                           transient=False) from None
        except smtplib.SMTPNotSupportedError as exc:
            raise _Failure(_scrub(f"SMTP {self.where}: {exc}; check [notify] security and smtp_user", secrets),
                           transient=False) from None
        except smtplib.SMTPRecipientsRefused as exc:
            codes = {code for code, _ in exc.recipients.values()}
            raise _Failure(f"SMTP {self.where} refused every recipient "
                           f"({', '.join(f'{a}: {c}' for a, (c, _) in exc.recipients.items())})",
                           transient=all(400 <= code < 500 for code in codes)) from None
        except smtplib.SMTPResponseException as exc:
            raise _Failure(_scrub(f"SMTP {self.where} answered {_smtp_reply(exc)}", secrets),
                           transient=400 <= exc.smtp_code < 500) from None
        except ssl.SSLCertVerificationError as exc:
            raise _Failure(f"the certificate of SMTP {self.where} cannot be verified ({exc.verify_message}); "
                           "set [notify] ca_file to the PEM of the CA that signed it", transient=False) from None
        except (smtplib.SMTPException, OSError) as exc:
            # down, refused, reset, timed out: the next attempt may find the server back
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
            raise _Failure(_scrub(f"SMTP {self.where} unreachable ({reason})", secrets), transient=True) from None
        accepted = [a for a in message.email_rcpt if a not in refused]
        note = f" (refused: {', '.join(refused)})" if refused else ""
        return f"{', '.join(accepted)} via {self.where}{note}"


class WebhookNotifier(Notifier):
    """A JSON POST with a Slack-compatible `text` field and every fact as its own key."""

    name = "webhook"

    def __init__(self, config: NotifyConfig, url: str):
        super().__init__(config)
        self.url = url
        parts = urlsplit(url)
        self.where = f"{parts.scheme}://{parts.netloc}"  # the path may be the secret (Slack)

    def send(self, message: OutboxMessage) -> str:
        body = json.dumps(message.payload, ensure_ascii=False).encode("utf-8")
        request = urllib.request.Request(self.url, data=body, method="POST", headers={
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": f"mlci/{__version__}",
            "Idempotency-Key": message.message_id,  # lets a receiver drop a repeat after a lost reply
        })
        try:
            with urllib.request.urlopen(request, timeout=self.config.timeout) as response:
                response.read()
                status = response.status
        except urllib.error.HTTPError as exc:
            transient = exc.code in (408, 425, 429) or exc.code >= 500
            raise _Failure(f"webhook {self.where} answered HTTP {exc.code} {exc.reason}", transient=transient) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise _Failure(f"webhook {self.where} unreachable ({reason})", transient=True) from None
        return f"{self.where} (HTTP {status})"


def webhook_url(config: NotifyConfig) -> str | None:
    url = config.webhook_url or os.environ.get(WEBHOOK_ENV) or None
    if url is not None and (not url.startswith(("http://", "https://")) or "\n" in url or "\r" in url):
        raise ConfigError(f"{WEBHOOK_ENV} is not a single-line http:// or https:// URL", hint="fix the variable")
    return url


def notifiers_for(config: NotifyConfig) -> list[Notifier]:
    """The channels `config` turns on: email when smtp_host is set, webhook when a URL is."""
    found: list[Notifier] = []
    if config.smtp_host:
        found.append(EmailNotifier(config))
    url = webhook_url(config)
    if url:
        found.append(WebhookNotifier(config, url))
    return found


def run_config(run: Run) -> NotifyConfig:
    """The [notify] section of the config stored with the run (run.json 'config')."""
    return run.record().config.notify


# ----------------------------------------------------------------------------- facts and text


def _number(value: float | None, other: float | None = None) -> str:
    """3 decimals, more when needed so two different numbers never print the same (0.9699 < 0.97)."""
    if value is None:
        return "–"
    for digits in range(3, 8):
        text = f"{value:.{digits}f}".rstrip("0").rstrip(".") if abs(value) >= 0.01 or value == 0 else f"{value:.{digits}g}"
        if other is None or value == other or text != _number(other):
            return text
    return repr(value)


def _seconds(value: float | None) -> str:
    if value is None:
        return "–"
    value = int(round(value))
    hours, rest = divmod(value, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h {minutes}m {seconds}s" if hours else f"{minutes}m {seconds}s" if minutes else f"{seconds}s"


def _parse_time(text: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


def _one_line(text: str, limit: int = 120) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _hparams_line(hparams: dict[str, Any]) -> str:
    return ", ".join(f"{key}={value}" for key, value in hparams.items()) or "–"


def _trial_rows(run: Run) -> list[dict[str, Any]]:
    """The report's reading of the trials (one reading serves both), as JSON-ready rows."""
    rows = []
    for row in trial_rows(run):
        fields = asdict(row)
        fields["trial"] = fields.pop("number")
        fields["seconds"] = row.wall_seconds if row.wall_seconds is not None else row.train_seconds
        rows.append(fields)
    return rows


def _facts(run: Run, record: RunRecord, event: str, trial: int | None) -> dict[str, Any]:
    objective = Objective.of(record.config)
    metric, threshold, higher = objective.metric, objective.threshold, objective.higher_is_better
    rows = _trial_rows(run)
    done = [row for row in rows if row["value"] is not None]
    best_trial, best_value = record.best_trial, record.best_value
    if best_value is None and done:
        best = (max if higher else min)(done, key=lambda row: row["value"])
        best_trial, best_value = best["trial"], best["value"]
    best_row = next((row for row in rows if row["trial"] == best_trial), None)
    failed = None
    if event == "trial-failed":
        candidates = [row for row in rows if trial is None or row["trial"] == trial]
        failed = next((row for row in reversed(candidates) if row["status"] == TrialStatus.FAILED),
                      candidates[-1] if candidates else None)
        if trial is not None and failed is None:
            raise UsageError(f"run {run.id} has no trial {trial}", hint=f"trials: {[r['trial'] for r in rows]}")
    met = objective.met(best_value)
    if event == "success" and not met:
        raise UsageError(f"run {run.id} has not met the threshold: best {metric} {_number(best_value, threshold)} "
                         f"vs {_number(threshold)}, so 'success' would be untrue",
                         hint="use --event budget-exhausted, or leave --event out to follow the run's status")
    started, finished = _parse_time(record.created_at), _parse_time(record.finished_at)
    duration = ((finished or datetime.now(timezone.utc)) - started).total_seconds() if started else None
    return {
        "event": event, "run_id": record.run_id, "model_name": record.model_name, "commit": record.commit,
        "status": record.status, "metric": metric, "threshold": threshold, "higher_is_better": higher,
        "met": met, "best_trial": best_trial, "best_value": best_value,
        "best_hparams": best_row["hparams"] if best_row else {}, "trials_done": len(done),
        "trials": rows, "failed_trial": failed, "message": record.message,
        "created_at": record.created_at, "finished_at": record.finished_at, "duration_seconds": duration,
        "run_dir": str(run.dir),
    }


def _subject(facts: dict[str, Any]) -> str:
    model, metric, event = facts["model_name"], facts["metric"], facts["event"]
    threshold, best, n = facts["threshold"], facts["best_value"], facts["trials_done"]
    sign = "≥" if facts["higher_is_better"] else "≤"
    trials = f"{n} trial{'s' if n != 1 else ''}"
    if event == "success":
        return f"✅ {model} reached {metric} {_number(best, threshold)} {sign} {_number(threshold)} in {trials}"
    if event == "budget-exhausted":
        if best is None:
            return f"❌ {model} did not reach {metric} {_number(threshold)}: no trial finished (budget spent)"
        return (f"❌ {model} did not reach {metric} {_number(threshold)}: best {_number(best, threshold)} "
                f"after {trials} (budget spent)")
    if event == "trial-failed":
        row = facts["failed_trial"]
        if row is None:
            return f"⚠️ {model}: a trial failed"
        return _one_line(f"⚠️ {model}: trial {row['trial']} failed" + (f" ({row['reason']})" if row["reason"] else ""))
    return _one_line(f"❌ {model}: pipeline error" + (f" ({facts['message']})" if facts["message"] else ""))


def _summary_lines(facts: dict[str, Any]) -> list[tuple[str, str]]:
    sign = "≥" if facts["higher_is_better"] else "≤"
    best = facts["best_value"]
    verdict = "met" if facts["met"] else "not met"
    return [
        ("Model", facts["model_name"]),
        ("Run", facts["run_id"]),
        ("Commit", facts["commit"] or "–"),
        ("Event", facts["event"]),
        (facts["metric"].capitalize(), f"{_number(best, facts['threshold'])} (threshold {sign} "
                                       f"{_number(facts['threshold'])}: {verdict})"),
        ("Best trial", "–" if facts["best_trial"] is None else str(facts["best_trial"])),
        ("Best hyperparameters", _hparams_line(facts["best_hparams"])),
        ("Trials done", str(facts["trials_done"])),
        ("Started", facts["created_at"] or "–"),
        ("Finished", facts["finished_at"] or "–"),
        ("Duration", _seconds(facts["duration_seconds"])),
        *([("Message", facts["message"])] if facts["message"] else []),
        ("Run folder", facts["run_dir"]),
    ]


TABLE_HEAD = ("trial", "status", "{metric}", "seconds", "restarts", "change / note", "hyperparameters")


def _table(facts: dict[str, Any]) -> list[list[str]]:
    return [[str(row["trial"]) + (" ★" if row["trial"] == facts["best_trial"] else ""), row["status"],
             _number(row["value"]), _seconds(row["seconds"]), str(row["restarts"]),
             _one_line(row["reason"] or row["change"] or row["proposed_by"], 60), _hparams_line(row["hparams"])]
            for row in facts["trials"]]


def _text(subject: str, facts: dict[str, Any]) -> str:
    lines = [subject, ""]
    width = max(len(label) for label, _ in _summary_lines(facts))
    lines += [f"{label + ':':<{width + 1}} {value}" for label, value in _summary_lines(facts)]
    head = [h.format(metric=facts["metric"]) for h in TABLE_HEAD]
    table = [head, *_table(facts)]
    widths = [max(len(row[i]) for row in table) for i in range(len(head) - 1)]
    lines += ["", "Trials (★ best):"]
    lines += ["  " + "  ".join(cell.ljust(widths[i]) if i < len(widths) else cell for i, cell in enumerate(row))
              for row in table]
    if not facts["trials"]:
        lines.append("  (no trial yet)")
    return "\n".join(lines) + "\n"


def _html(subject: str, facts: dict[str, Any], attachment: str | None) -> str:
    esc = html.escape
    summary = "".join(f"<tr><th align='left'>{esc(label)}</th><td>{esc(value)}</td></tr>"
                      for label, value in _summary_lines(facts))
    head = "".join(f"<th>{esc(h.format(metric=facts['metric']))}</th>" for h in TABLE_HEAD)
    rows = "".join(
        ("<tr style='font-weight:bold'>" if cells[0].endswith("★") else "<tr>")
        + "".join(f"<td>{esc(cell)}</td>" for cell in cells) + "</tr>"
        for cells in _table(facts))
    plot = f"<p>The {esc(facts['metric'])} of each trial: see the attached {esc(attachment)}.</p>" if attachment else ""
    return (f"<!DOCTYPE html><html><body style='font-family:sans-serif'><h2>{esc(subject)}</h2>"
            f"<table cellpadding='3'>{summary}</table><h3>Trials (★ best)</h3>"
            f"<table border='1' cellspacing='0' cellpadding='3'><tr>{head}</tr>{rows}</table>{plot}"
            f"<p style='color:gray'>sent by mlci {esc(__version__)}</p></body></html>\n")


def _payload(subject: str, facts: dict[str, Any], key: str) -> dict[str, Any]:
    lines = [subject, *(f"{label}: {value}" for label, value in _summary_lines(facts)[1:8])]
    return {"text": "\n".join(lines), "schema_version": 1, "notification": key,
            **{name: value for name, value in facts.items() if name != "run_dir"}}


def _compose(run: Run, record: RunRecord, event: str, key: str, trial: int | None) -> OutboxMessage:
    facts = _facts(run, record, event, trial)
    subject = _one_line(_subject(facts), 200)  # a newline from a model name must not end the header
    plot = run.dir / "report.png"
    attachment = f"{run.id}.png" if plot.is_file() else None  # run ids are safe file names; model names may not be
    return OutboxMessage(key=key, event=event, run_id=run.id, subject=subject, text=_text(subject, facts),
                         html=_html(subject, facts, attachment), payload=_payload(subject, facts, key),
                         message_id=make_msgid(idstring=f"{run.id}.{key}", domain="mlci.local"),
                         attachment=attachment)


# ----------------------------------------------------------------------------- the outbox


def _message_path(run: Run, key: str) -> Path:
    return run.outbox / f"{key}.json"


def _read_message(path: Path) -> OutboxMessage:
    return read_record(path, OutboxMessage, what="outbox message", error=NotifyError,
                       fix="delete it and run `mlci notify` again to write it anew")


def _outbox_lock(run: Run):
    """Two processes (`mlci run` and job 5) never send the same message at once."""
    busy = NotifyError(f"{run.outbox} is locked by another mlci notify for {LOCK_WAIT:.0f}s",
                       hint="wait for it, then run `mlci notify --flush`")
    return file_lock(run.outbox / ".lock", timeout=LOCK_WAIT, busy=busy)


def _attachment_bytes(run: Run, message: OutboxMessage) -> bytes | None:
    if not message.attachment:
        return None
    try:
        return (run.dir / "report.png").read_bytes()
    except OSError:
        return None


def _prepare(run: Run, message: OutboxMessage, notifiers: list[Notifier]) -> None:
    """Every configured channel gets a pending delivery and its content, written before any send."""
    changed = not _message_path(run, message.key).exists()
    for notifier in notifiers:
        if notifier.name not in message.deliveries:
            message.deliveries[notifier.name] = Delivery()
            changed = True
        if message.deliveries[notifier.name].status == "pending":
            changed |= notifier.prepare(message, _attachment_bytes(run, message))
    if changed:
        write_json(_message_path(run, message.key), message)


def _attempt(notifier: Notifier, message: OutboxMessage, delivery: Delivery, config: NotifyConfig,
             echo: Echo) -> str:
    """Bounded retries with exponential backoff for transient failures; permanent ones fail at once
    (a wrong password stays wrong, and repeated failed logins lock accounts)."""
    delay = config.backoff
    for attempt in range(config.retries + 1):
        delivery.attempts += 1
        try:
            return notifier.send(message)
        except _Failure as failure:
            delivery.last_error = failure.line
            if not failure.transient or attempt == config.retries:
                raise
            echo(f"notify: {notifier.name}: {failure.line}; retrying in {delay:g}s "
                 f"(attempt {attempt + 2} of {config.retries + 1})")
            time.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF)
    raise AssertionError("unreachable")


def _send_pending(run: Run, message: OutboxMessage, notifiers: list[Notifier], config: NotifyConfig,
                  echo: Echo) -> NotifyResult:
    result = NotifyResult(messages=[_message_path(run, message.key)])
    label = f"{run.id}/{message.key}"
    by_name = {notifier.name: notifier for notifier in notifiers}
    if not message.deliveries:
        result.console_only.append(label)
    for name in message.pending():
        delivery = message.deliveries[name]
        notifier = by_name.get(name)
        if notifier is None:
            delivery.last_error = f"{name} is pending but the [notify] config in use does not configure {name}"
            result.pending.append(f"{label} by {name}")
            result.errors.append(f"{label}: {delivery.last_error}; kept in {_message_path(run, message.key)}")
            continue
        before = delivery.attempts  # the record counts every attempt ever; the message, this call's
        try:
            where = _attempt(notifier, message, delivery, config, echo)
        except _Failure as failure:
            count = delivery.attempts - before
            tries = f"after {count} attempt{'s' if count != 1 else ''}"
            result.pending.append(f"{label} by {name}")
            result.errors.append(f"'{message.key}' of run {run.id} not delivered by {name}: {failure.line} ({tries}); "
                                 f"kept in {_message_path(run, message.key)}")
            echo(f"notify: {name}: not delivered, kept in {_message_path(run, message.key)}")
        else:
            delivery.status, delivery.sent_at, delivery.sent_to, delivery.last_error = "sent", now_iso(), where, None
            result.sent.append(f"{label} by {name} to {where}")
            echo(f"notify: {name}: sent '{message.subject}' to {where}")
        finally:
            write_json(_message_path(run, message.key), message)
    return result


def _raise_if_pending(result: NotifyResult, run_hint: str) -> NotifyResult:
    if result.pending:
        more = f" (and {len(result.errors) - 1} more)" if len(result.errors) > 1 else ""
        raise NotifyError(f"{result.errors[0]}{more}",
                          hint=f"send it later with `mlci notify --flush{run_hint}`")
    return result


def _console(message: OutboxMessage, echo: Echo, path: Path, full_text: bool) -> None:
    if not full_text:  # `mlci run` has just printed the same facts as its summary
        echo(f"notify: no channel in [notify] (smtp_host, webhook_url): '{message.subject}' kept in {path}")
        return
    echo(f"notify: no channel in [notify] (smtp_host, webhook_url): the message stays in the outbox "
         f"and is shown here only")
    for line in message.text.rstrip().splitlines():
        echo(f"  {line}")


# ----------------------------------------------------------------------------- entry points


def event_for(record: RunRecord) -> str:
    """The event that announces a finished run: the oracle's reason for ending it says which."""
    reason = record.reason or _STATUS_REASONS.get(RunStatus(record.status))
    event = reason.event if reason is not None and RunStatus(record.status).is_finished() else None
    if event is None:
        raise UsageError(f"run {record.run_id} has status '{record.status}': nothing to announce yet",
                         hint=f"pass --event ({'|'.join(EVENTS)}) to say which")
    return event


def notify(run: Run, event: str | None = None, *, config: NotifyConfig, echo: Echo | None = None,
           trial: int | None = None, full_text: bool = True) -> NotifyResult:
    """Announce `event` of `run` (default: from its status) once, through every configured channel.

    Raises NotifyError (exit 8) when a channel fails after its retries; the message stays pending.
    """
    echo = echo or (lambda _line: None)
    record = run.record()
    event = event or event_for(record)
    if event not in EVENTS:
        raise UsageError(f"unknown event '{event}'", hint=f"use one of {', '.join(EVENTS)}")
    if trial is not None and event != "trial-failed":
        raise UsageError("--trial goes with --event trial-failed only")
    notifiers = notifiers_for(config)
    with _outbox_lock(run):
        if event == "trial-failed":
            number = _facts(run, record, event, trial)["failed_trial"]
            key = f"trial-failed-{number['trial']}" if number else "trial-failed"
        else:
            key = event
        path = _message_path(run, key)
        message = _read_message(path) if path.exists() else _compose(run, record, event, key, trial)
        fresh = not path.exists()
        _prepare(run, message, notifiers)
        if fresh and not message.deliveries:
            _console(message, echo, path, full_text)
        if not fresh and not message.pending():
            sent = ", ".join(f"{name} at {d.sent_at}" for name, d in message.deliveries.items())
            echo(f"notify: '{key}' of run {run.id} was already " + (f"sent ({sent}); not sending it again" if sent else
                 f"written to {path} with no channel configured; add one to [notify] to send it"))
            return NotifyResult(already_sent=[f"{run.id}/{key}"], messages=[path])
        result = _send_pending(run, message, notifiers, config, echo)
    return _raise_if_pending(result, f" --run {run.id}")


def flush(run_or_store: Run | RunStore, *, config: NotifyConfig | None = None,
          echo: Echo | None = None) -> NotifyResult:
    """Send what is pending in the outbox of one run, or of every run of a store.

    `config` None: each run's own stored [notify] config. Raises NotifyError if anything stays pending.
    """
    echo = echo or (lambda _line: None)
    runs = [run_or_store] if isinstance(run_or_store, Run) else run_or_store.runs()
    result = NotifyResult()
    for run in runs:
        if not run.outbox.is_dir():
            continue
        run_notify = config if config is not None else run_config(run)
        notifiers = notifiers_for(run_notify)
        with _outbox_lock(run):
            for path in sorted(run.outbox.glob("*.json")):
                message = _read_message(path)
                if not message.pending():
                    continue
                _prepare(run, message, [n for n in notifiers if n.name in message.deliveries])
                result.merge(_send_pending(run, message, notifiers, run_notify, echo))
    if not result.sent and not result.pending:
        echo("notify: nothing pending in the outbox")
    hint = f" --run {run_or_store.id}" if isinstance(run_or_store, Run) else ""
    return _raise_if_pending(result, hint)


def announce(run: Run, config: NotifyConfig, *, echo: Echo | None = None, send: bool = True,
             full_text: bool = True, event: str | None = None, trial: int | None = None,
             warn_only: bool = False) -> NotifyResult | None:
    """The end of a run as every driver shows it: report.html/png rewritten, then the notification.

    A report that cannot be written never hides the outcome; with send=False only the report is written;
    with warn_only a notification error is a warning line (the run's own outcome matters more).
    """
    from mlci.integrations.report import write_report

    echo = echo or (lambda _line: None)
    try:
        write_report(run)
    except Exception as exc:  # noqa: BLE001
        echo(f"warning: the report could not be written ({type(exc).__name__}: {exc})")
    if not send:
        return None
    if event is None and not RunStatus(run.record().status).is_finished():
        raise UsageError(f"run {run.id} has not ended (status {run.record().status}): nothing to announce yet",
                         hint=f"pass --event ({'|'.join(EVENTS)}) to say which")
    try:
        return notify(run, event, config=config, echo=echo, trial=trial, full_text=full_text)
    except MlciError as err:
        if not warn_only:
            raise
        echo(f"warning: {err.one_line()}")
        return None
