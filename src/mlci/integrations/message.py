"""A notification's message: the facts of a run's outcome, and the subject, text, HTML and JSON made of them.

Stored in the outbox as an `OutboxMessage` before any channel sends it (integrations/notify.py).
"""
from __future__ import annotations

import html
import os
from dataclasses import asdict
from email.utils import make_msgid
from typing import Any, Literal, Mapping

from pydantic import BaseModel, Field

from mlci import __version__
from mlci.core.objective import Objective
from mlci.core.states import TrialStatus
from mlci.core.errors import UsageError
from mlci.integrations.reports import trial_rows
from mlci.integrations.reports.rows import run_seconds, seconds_text
from mlci.core.store import Record, Run, RunRecord, now_iso


EVENTS = ("success", "budget-exhausted", "trial-failed", "pipeline-error")
# The HTML Publisher's name for report.html in the Jenkins jobs and Jenkinsfile: served at BUILD_URL/report/.
JENKINS_REPORT = "report"



# ----------------------------------------------------------------------------- records


class Delivery(BaseModel):
    """One channel's delivery of a message. `stage` says how far the send went; data-sent is on disk before
    the message's bytes go, so a crash or a lost reply leaves the truth:
    for email: connecting -> data-sent (the whole message went; written *before* its bytes) -> accepted
    (the server's 250) or data-refused (a 4xx/5xx reply: not delivered). A delivery found at data-sent with
    no reply is "unconfirmed": the server may have stored it, so it is not resent without being asked
    (`mlci notify --flush --resend-unconfirmed`): at most once per event (docs/notifications.md)."""

    status: Literal["pending", "sent", "unconfirmed"] = "pending"
    attempts: int = 0
    last_error: str | None = None
    sent_at: str | None = None
    sent_to: str | None = None
    stage: str | None = None
    stage_at: str | None = None
    message_id: str | None = None  # the Message-ID (or webhook Idempotency-Key) this delivery carries


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
    return seconds_text(value, missing="–")


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
        fields.pop("curves")  # per-epoch lists belong in the report, not in a mail or a webhook body
        fields["seconds"] = row.wall_seconds if row.wall_seconds is not None else row.train_seconds
        rows.append(fields)
    return rows


def jenkins_links(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Under Jenkins (BUILD_URL set): the build's page and the report its HTML Publisher publishes there."""
    env = os.environ if environ is None else environ
    build_url = (env.get("BUILD_URL") or "").strip()
    if not build_url.startswith(("http://", "https://")):
        return {}
    build_url = build_url if build_url.endswith("/") else build_url + "/"
    return {"build_url": build_url, "report_url": f"{build_url}{JENKINS_REPORT}/"}


def outcome_facts(run: Run, record: RunRecord, event: str, trial: int | None) -> dict[str, Any]:
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
        if trial is not None and not candidates:
            raise UsageError(f"run {run.id} has no trial {trial}", hint=f"trials: {[r['trial'] for r in rows]}")
        failed = next((row for row in reversed(candidates) if row["status"] == TrialStatus.FAILED), None)
        if failed is None:  # announcing a failure that never happened would be untrue
            which = f"trial {trial} of run {run.id} has not failed (status {candidates[0]['status']})" \
                if trial is not None else f"run {run.id} has no failed trial"
            raise UsageError(which, hint="leave --event out to announce the run's outcome")
    met = objective.met(best_value)
    if event == "success" and not met:
        raise UsageError(f"run {run.id} has not met the threshold: best {metric} {_number(best_value, threshold)} "
                         f"vs {_number(threshold)}, so 'success' would be untrue",
                         hint="use --event budget-exhausted, or leave --event out to follow the run's status")
    duration = run_seconds(record)
    return {
        "event": event, "run_id": record.run_id, "model_name": record.model_name, "commit": record.commit,
        "status": record.status, "metric": metric, "threshold": threshold, "higher_is_better": higher,
        "met": met, "best_trial": best_trial, "best_value": best_value,
        "best_hparams": best_row["hparams"] if best_row else {}, "trials_done": len(done),
        "trials": rows, "failed_trial": failed, "message": record.message,
        "created_at": record.created_at, "finished_at": record.finished_at, "duration_seconds": duration,
        "run_dir": str(run.dir.resolve()), **jenkins_links(),  # a relative path means nothing in a mail
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
        *([("Jenkins build", facts["build_url"]), ("Report", facts["report_url"])] if facts.get("build_url") else []),
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
    if facts.get("build_url"):  # under Jenkins: links a reader can click
        plot += (f"<p><a href='{esc(facts['report_url'])}'>The report on Jenkins</a> · "
                 f"<a href='{esc(facts['build_url'])}'>the build</a></p>")
    return (f"<!DOCTYPE html><html><body style='font-family:sans-serif'><h2>{esc(subject)}</h2>"
            f"<table cellpadding='3'>{summary}</table><h3>Trials (★ best)</h3>"
            f"<table border='1' cellspacing='0' cellpadding='3'><tr>{head}</tr>{rows}</table>{plot}"
            f"<p style='color:gray'>sent by mlci {esc(__version__)}</p></body></html>\n")


def _payload(subject: str, facts: dict[str, Any], key: str) -> dict[str, Any]:
    lines = [subject, *(f"{label}: {value}" for label, value in _summary_lines(facts)[1:8])]
    return {"text": "\n".join(lines), "schema_version": 1, "notification": key,
            **{name: value for name, value in facts.items() if name != "run_dir"}}


def compose(run: Run, record: RunRecord, event: str, key: str, trial: int | None) -> OutboxMessage:
    facts = outcome_facts(run, record, event, trial)
    subject = _one_line(_subject(facts), 200)  # a newline from a model name must not end the header
    plot = run.dir / "report.png"
    attachment = f"{run.id}.png" if plot.is_file() else None  # run ids are safe file names; model names may not be
    return OutboxMessage(key=key, event=event, run_id=run.id, subject=subject, text=_text(subject, facts),
                         html=_html(subject, facts, attachment), payload=_payload(subject, facts, key),
                         message_id=make_msgid(idstring=f"{run.id}.{key}", domain="mlci.local"),
                         attachment=attachment)
