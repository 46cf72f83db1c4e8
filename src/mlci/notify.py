"""Notifications (a first version: the outbox and the console; issue 7 adds email and webhooks)."""
from __future__ import annotations

from dataclasses import dataclass, field

from mlci.store import Run, write_json, now_iso

EVENTS = {"met": "success", "exhausted": "budget-exhausted", "failed": "pipeline-error"}


@dataclass
class NotifyResult:
    sent: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)


def notify(run: Run, event: str | None = None, *, config=None, echo=None) -> NotifyResult:
    record = run.record()
    event = event or EVENTS.get(record.status, "pipeline-error")
    path = run.outbox / f"{event}.json"
    write_json(path, {"schema_version": 1, "event": event, "run_id": run.id, "best_value": record.best_value,
                      "created_at": now_iso()})
    if echo:
        echo(f"notification '{event}' written to {path}")
    return NotifyResult(sent=[str(path)])
