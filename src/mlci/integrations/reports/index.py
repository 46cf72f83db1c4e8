"""$MLCI_HOME/index.html: every run of the store, grouped by model, with its warm-start lineage.

Rewritten after every run (and by `mlci report --all`); self-contained like report.html.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from mlci.core.errors import MlciError
from mlci.core.store import Run, RunRecord, RunStore
from mlci.integrations.reports.page import STYLE, e, fmt, headline
from mlci.integrations.reports.rows import run_seconds, seconds_text, trial_rows, warm_start_sources


@dataclass
class RunEntry:
    run: Run
    record: RunRecord
    trials: int
    warm_from: list[tuple[str, int | None]] = field(default_factory=list)


def run_entries(store: RunStore) -> list[RunEntry]:
    """Every readable run, oldest first (an unreadable run.json is left out, not fatal)."""
    entries = []
    for run in store.runs():
        try:
            record = run.record()
            rows = trial_rows(run)
        except MlciError:
            continue
        entries.append(RunEntry(run, record, len(rows), warm_start_sources(rows)))
    return sorted(entries, key=lambda entry: entry.record.created_at)


def _lineage_cell(entry: RunEntry, known: set[str]) -> str:
    parts = []
    for source, trial in entry.warm_from:
        text = e(source) + (f"#{trial}" if trial is not None else "")
        parts.append(f"<a href='#{e(source)}'>{text}</a>" if source in known else text)
    return "← " + ", ".join(parts) if parts else "—"


def render_index(store: RunStore, entries: list[RunEntry]) -> str:
    known = {entry.run.id for entry in entries}
    models: dict[str, list[RunEntry]] = {}
    for entry in entries:
        models.setdefault(entry.record.model_name, []).append(entry)
    sections = []
    for model, runs in models.items():
        lines = []
        for entry in runs:
            record, run = entry.record, entry.run
            report = f"runs/{run.id}/report.html"
            name = f"<a href='{e(report)}'>{e(run.id)}</a>" if (store.home / report).is_file() else e(run.id)
            status = "met" if record.status == "met" else "below"
            lines.append(
                f"<tr id='{e(run.id)}'><td><code>{name}</code></td><td><code>{e((record.commit or 'working tree')[:12])}</code></td>"
                f"<td class='{status}'>{e(headline(record.status))}</td>"
                f"<td class='num'>{fmt(record.best_value)}</td><td class='num'>{entry.trials}</td>"
                f"<td class='num'>{seconds_text(run_seconds(record))}</td><td>{e(record.created_at)}</td>"
                f"<td>{_lineage_cell(entry, known)}</td></tr>")
        metric = runs[-1].record.config.metric
        sections.append(
            f"<h2>{e(model)}</h2><p class='note'>{len(runs)} run(s), oldest first; best: the {e(metric)} of "
            "the run's best trial.</p>"
            "<table><tr><th>run</th><th>commit</th><th>status</th><th>best</th><th>trials</th><th>duration</th>"
            f"<th>started</th><th>warm-started from</th></tr>{''.join(lines)}</table>")
    body = "".join(sections) or "<p>No runs yet: start one with <code>mlci run MODEL_FILE</code>.</p>"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mlci — all runs</title>
<style>{STYLE}</style></head><body>
<h1>All runs</h1>
<p class='note'>The run store <code>{e(str(store.home.resolve()))}</code>: {len(entries)} run(s) of {len(models)} model(s).
A run of a model that was trained before starts from the earlier runs' results (Optuna's warm start);
"warm-started from" names the run whose best trial it tried first.</p>
{body}
</body></html>
"""


def write_index(store: RunStore) -> Path:
    store.home.mkdir(parents=True, exist_ok=True)
    path, tmp = store.home / "index.html", store.home / f".index.html.{os.getpid()}.tmp"
    tmp.write_text(render_index(store, run_entries(store)), encoding="utf-8")
    os.replace(tmp, path)
    return path
