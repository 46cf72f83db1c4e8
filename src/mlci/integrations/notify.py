"""Notifications (job 5): tell people the best model is ready, or that the budget ran out.

Each message is written to the run's outbox/ first, then sent through every configured channel
(email over SMTP, a JSON webhook), then marked sent there: nothing is lost, nothing is sent twice.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable


from mlci.core.config import NotifyConfig
from mlci.core.states import DoneReason, RunStatus
from mlci.core.errors import MlciError, NotifyError, UsageError
from mlci.integrations.channels import DATA_SENT, ChannelFailure, Notifier, notifiers_for
from mlci.integrations.message import EVENTS, Delivery, OutboxMessage, compose, outcome_facts
from mlci.core.store import Run, RunRecord, RunStore, file_lock, now_iso, read_record, write_json


# A run written before the oracle recorded its reason: the event its status implies.
_STATUS_REASONS = {RunStatus.MET: DoneReason.MET, RunStatus.EXHAUSTED: DoneReason.BUDGET,
                   RunStatus.FAILED: DoneReason.ERROR}
MAX_BACKOFF = 60.0
LOCK_WAIT = 300.0

Echo = Callable[[str], None]


@dataclass
class NotifyResult:
    """What a call did; `pending` lists what stays in the outbox for `mlci notify --flush`."""

    sent: list[str] = field(default_factory=list)  # "<run>/<key> by <channel> to <where>"
    pending: list[str] = field(default_factory=list)
    already_sent: list[str] = field(default_factory=list)
    console_only: list[str] = field(default_factory=list)
    messages: list[Path] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    unconfirmed: list[str] = field(default_factory=list)  # found (this call) sent without a reply: not resent

    @property
    def ok(self) -> bool:
        return not self.pending and not self.unconfirmed

    def merge(self, other: "NotifyResult") -> None:
        for name in ("sent", "pending", "already_sent", "console_only", "messages", "errors", "unconfirmed"):
            getattr(self, name).extend(getattr(other, name))


def run_config(run: Run) -> NotifyConfig:
    """The [notify] section of the config stored with the run (run.json 'config')."""
    return run.record().config.notify


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
             echo: Echo, stage) -> str:
    """Bounded retries with exponential backoff for transient failures; permanent ones fail at once
    (a wrong password stays wrong, and repeated failed logins lock accounts). A failure after the whole
    message went (the reply to DATA lost) is never retried: the server may have kept it."""
    delay = config.backoff
    for attempt in range(config.retries + 1):
        delivery.attempts += 1
        try:
            return notifier.send(message, stage)
        except ChannelFailure as failure:
            delivery.last_error = failure.line
            if not failure.transient or attempt == config.retries or delivery.stage == DATA_SENT:
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
        path = _message_path(run, message.key)
        if delivery.stage == DATA_SENT:  # a process stopped between sending the message and its reply
            _unconfirmed(run, message, name, delivery, result, echo)
            write_json(path, message)
            continue

        def stage(name_: str, delivery: Delivery = delivery) -> None:
            delivery.stage, delivery.stage_at, delivery.message_id = name_, now_iso(), message.message_id
            if name_ == DATA_SENT:  # on disk before the message's bytes go: a crash leaves the truth (the
                write_json(path, message)  # other stages are saved with the outcome, below)

        before = delivery.attempts  # the record counts every attempt ever; the message, this call's
        try:
            where = _attempt(notifier, message, delivery, config, echo, stage)
        except ChannelFailure as failure:
            if delivery.stage == DATA_SENT:
                _unconfirmed(run, message, name, delivery, result, echo)
                continue
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


def _unconfirmed(run: Run, message: OutboxMessage, name: str, delivery: Delivery, result: NotifyResult,
                 echo: Echo) -> None:
    """The whole message went but no reply came: the server may have kept it. Not resent (at most once)."""
    delivery.status = "unconfirmed"
    path = _message_path(run, message.key)
    line = (f"'{message.key}' of run {run.id} by {name}: the message went to the server but its reply was lost "
            f"({delivery.last_error or 'the process stopped'}); it is probably delivered and is not sent again "
            f"(Message-ID {message.message_id}); if it never arrives: `mlci notify --flush --resend-unconfirmed "
            f"--run {run.id}`; kept in {path}")
    result.unconfirmed.append(f"{run.id}/{message.key} by {name}")
    result.errors.append(line)
    echo(f"notify: {name}: delivery unconfirmed, not resent: {path}")


def _raise_if_pending(result: NotifyResult, run_hint: str) -> NotifyResult:
    if result.pending or result.unconfirmed:
        more = f" (and {len(result.errors) - 1} more)" if len(result.errors) > 1 else ""
        raise NotifyError(f"{result.errors[0]}{more}",
                          hint=f"send it later with `mlci notify --flush{run_hint}`")
    return result


def _console(message: OutboxMessage, echo: Echo, path: Path, full_text: bool) -> None:
    if not full_text:  # `mlci run` has just printed the same facts as its summary
        echo(f"notify: no channel in [notify] (smtp_host, webhook_url): '{message.subject}' kept in {path}")
        return
    echo("notify: no channel in [notify] (smtp_host, webhook_url): the message stays in the outbox "
         "and is shown here only")
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


def _checked_key(run: Run, record: RunRecord, event: str, trial: int | None) -> str:
    """The outbox key of `event`; an event that did not happen (success below the threshold, a trial that did
    not fail) is refused here, before anything is written."""
    if event not in ("success", "trial-failed"):
        return event
    failed = outcome_facts(run, record, event, trial)["failed_trial"]
    return f"trial-failed-{failed['trial']}" if event == "trial-failed" else event


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
    key = _checked_key(run, record, event, trial)
    with _outbox_lock(run):
        path = _message_path(run, key)
        message = _read_message(path) if path.exists() else compose(run, record, event, key, trial)
        fresh = not path.exists()
        _prepare(run, message, notifiers)
        if fresh and not message.deliveries:
            _console(message, echo, path, full_text)
        if not fresh and not message.pending():
            sent = ", ".join(f"{name} at {d.sent_at}" if d.status == "sent" else
                             f"{name} {d.status} at {d.stage_at} (--flush --resend-unconfirmed sends it anew)"
                             for name, d in message.deliveries.items())
            echo(f"notify: '{key}' of run {run.id} was already " + (f"sent ({sent}); not sending it again" if sent else
                 f"written to {path} with no channel configured; add one to [notify] to send it"))
            return NotifyResult(already_sent=[f"{run.id}/{key}"], messages=[path])
        result = _send_pending(run, message, notifiers, config, echo)
    return _raise_if_pending(result, f" --run {run.id}")


def flush(run_or_store: Run | RunStore, *, config: NotifyConfig | None = None,
          echo: Echo | None = None, resend_unconfirmed: bool = False) -> NotifyResult:
    """Send what is pending in the outbox of one run, or of every run of a store.

    `config` None: each run's own stored [notify] config. Raises NotifyError if anything stays pending.
    """
    echo = echo or (lambda _line: None)
    runs = [run_or_store] if isinstance(run_or_store, Run) else run_or_store.runs()
    result = NotifyResult()
    for run in runs:
        if not run.outbox.is_dir():
            continue
        try:
            result.merge(_flush_run(run, config, echo, resend_unconfirmed))
        except MlciError as err:  # a damaged run (run.json, its config, a message) never holds back the others
            if isinstance(run_or_store, Run):
                raise
            result.pending.append(f"{run.id} (unreadable)")
            result.errors.append(err.one_line())
            echo(f"notify: run {run.id} skipped: {err.one_line()}")
    if not result.sent and not result.pending:
        echo("notify: nothing pending in the outbox")
    hint = f" --run {run_or_store.id}" if isinstance(run_or_store, Run) else ""
    return _raise_if_pending(result, hint)


def _flush_run(run: Run, config: NotifyConfig | None, echo: Echo, resend_unconfirmed: bool) -> NotifyResult:
    result = NotifyResult()
    run_notify = config if config is not None else run_config(run)
    notifiers = notifiers_for(run_notify)
    with _outbox_lock(run):
        for path in sorted(run.outbox.glob("*.json")):
            message = _read_message(path)
            for name, delivery in message.deliveries.items():
                if delivery.status != "unconfirmed":
                    continue
                if not resend_unconfirmed:
                    echo(f"notify: '{message.key}' of run {run.id} by {name} is unconfirmed (sent at "
                         f"{delivery.stage_at}, reply lost): not sent again; --resend-unconfirmed sends it anew")
                    continue
                delivery.status, delivery.stage = "pending", None  # asked for: at least once, from here
            if not message.pending():
                continue
            _prepare(run, message, [n for n in notifiers if n.name in message.deliveries])
            result.merge(_send_pending(run, message, notifiers, run_notify, echo))
    return result


def announce(run: Run, config: NotifyConfig, *, echo: Echo | None = None, send: bool = True,
             full_text: bool = True, event: str | None = None, trial: int | None = None,
             warn_only: bool = False) -> NotifyResult | None:
    """The end of a run as every driver shows it: report.html/png rewritten, then the notification.

    A report that cannot be written never hides the outcome; with send=False only the report is written;
    with warn_only a notification error is a warning line (the run's own outcome matters more).
    """
    from mlci.integrations.reports import write_report

    echo = echo or (lambda _line: None)
    if send and event is not None:
        _checked_key(run, run.record(), event, trial)  # an untrue event is refused before the report is rewritten
    try:
        write_report(run)
    except Exception as exc:  # noqa: BLE001
        echo(f"warning: the report could not be written ({type(exc).__name__}: {exc})")
    from mlci.integrations.tracking import sync

    sync(run, notice=echo)  # the report goes to the tracking server with the last trials
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
