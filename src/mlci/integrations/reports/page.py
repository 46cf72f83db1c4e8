"""report.html: one run as a person reads it, self-contained (inline CSS, images as data URIs, no script).

Links (trial logs and diffs, the index, earlier runs) are relative to runs/<id>/, where the page lives.
"""
from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any

from mlci.core.errors import MlciError
from mlci.core.objective import Objective
from mlci.core.states import RunStatus, TrialStatus
from mlci.core.store import Run
from mlci.integrations.reports.plots import curves_plot, data_uri, trial_plot
from mlci.integrations.reports.rows import TrialRow, run_seconds, seconds_text, warm_start_sources

e = html.escape

HEADLINES = {RunStatus.MET: "reached the threshold", RunStatus.EXHAUSTED: "budget spent below the threshold",
             RunStatus.FAILED: "failed", RunStatus.RUNNING: "running", RunStatus.CREATED: "created",
             RunStatus.INTERRUPTED: "interrupted"}

# Shared by the report and the index: a 1280 px window never scrolls sideways (long cells wrap).
STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; max-width: 1220px; }
table { border-collapse: collapse; font-size: 13px; margin-bottom: 1em; max-width: 100%; }
td, th { border: 1px solid #ccc; padding: 3px 7px; vertical-align: top; }
th { background: #f3f5f7; text-align: left; white-space: nowrap; }
td.text { overflow-wrap: anywhere; min-width: 8em; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.best { background: #e8f5e9; font-weight: 600; }
td.changed { background: #fff3cd; }
code { font-size: 12px; overflow-wrap: anywhere; }
img { max-width: 100%; height: auto; }
pre { white-space: pre-wrap; overflow-wrap: anywhere; font-size: 12px; background: #f7f7f7; padding: .5em; }
.met, .succeeded { color: #2e7d32; } .below, .failed { color: #c62828; } .pruned { color: #8d6e63; }
.note { color: #555; }
"""


def headline(status: RunStatus) -> str:
    """The report's headline for a run's status (what a person sees first)."""
    return HEADLINES[RunStatus(status)]


def fmt(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def show(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _link(run: Run, relative: str, text: str) -> str:
    """A link only to a file that exists, so every link of the page resolves."""
    return f"<a href='{e(relative)}'>{e(text)}</a>" if (run.dir / relative).is_file() else ""


def _trial_table(run: Run, rows: list[TrialRow], metric: str, best: int | None) -> str:
    body = []
    for r in rows:
        base = f"trials/{r.number}/"
        links = " ".join(filter(None, (_link(run, base + "log.txt", "log"), _link(run, base + "model.diff", "diff"))))
        note = r.reason or ""
        if r.status == TrialStatus.PRUNED and r.epochs is not None and not note:
            note = f"stopped by the pruner after epoch {r.epochs}"
        body.append(
            f"<tr class='{'best' if r.number == best else ''}'><td class='num'>{r.number}</td>"
            f"<td class='text'>{e(r.proposed_by)}</td><td class='text'>{e(r.change or '')}</td>"
            f"<td class='num'>{fmt(r.value)}</td>"
            f"<td class='num'>{r.epochs if r.epochs is not None else '—'}</td>"
            f"<td class='num'>{fmt(r.train_seconds, 1)}</td><td class='num'>{seconds_text(r.wall_seconds)}</td>"
            f"<td class='{e(r.status)}'>{e(r.status)}</td><td class='num'>{r.restarts}</td>"
            f"<td class='text'>{e(note)}</td><td>{links}</td></tr>")
    return ("<table><tr><th>#</th><th>proposed by</th><th>what changed</th>"
            f"<th>{e(metric)}</th><th>epochs</th><th>fit s</th><th>duration</th><th>status</th><th>restarts</th>"
            "<th>why it failed / was pruned</th><th>files</th></tr>" + "".join(body) + "</table>")


def _hparams_table(rows: list[TrialRow], best: int | None) -> str:
    """Trials by hyperparameters; a value that differs from the trial before it is marked."""
    names: list[str] = []
    for r in rows:
        names += [k for k in r.hparams if k not in names]
    if not names:
        return ""
    lines = []
    previous: dict[str, Any] | None = None
    for r in rows:
        cells = []
        for name in names:
            value = r.hparams.get(name)
            changed = previous is not None and previous.get(name) != value
            cells.append(f"<td class='num{' changed' if changed else ''}'>{e(show(value)) if name in r.hparams else '—'}</td>")
        lines.append(f"<tr class='{'best' if r.number == best else ''}'><td class='num'>{r.number}</td>{''.join(cells)}</tr>")
        previous = r.hparams
    head = "".join(f"<th>{e(n)}</th>" for n in names)
    return ("<h2>Hyperparameters</h2><p class='note'>A marked cell differs from the trial above it.</p>"
            f"<table><tr><th>#</th>{head}</tr>{''.join(lines)}</table>")


def _restarts(run: Run) -> str:
    restarts = []
    for trial in run.trials():
        try:
            state = trial.state()
        except MlciError:
            continue
        for restart in state.restarts:
            epoch = "the start" if restart.resumed_from_epoch is None else f"epoch {restart.resumed_from_epoch}"
            code = "—" if restart.exit_code is None else str(restart.exit_code)
            restarts.append(f"<tr><td>{trial.number}</td><td>{e(restart.at)}</td><td>{e(restart.reason)}</td>"
                            f"<td>{code}</td><td>{e(epoch)}</td></tr>")
    if not restarts:
        return ""
    return ("<h2>Restarts</h2><p>A trial whose process or container died was started again and resumed "
            "from its checkpoint (job 6, the monitor).</p><table><tr><th>trial</th><th>at</th><th>reason</th>"
            "<th>exit code</th><th>resumed from</th></tr>" + "".join(restarts) + "</table>")


def _diffs(run: Run) -> str:
    diffs = []
    for trial in run.trials():
        diff = trial.dir / "model.diff"
        if diff.exists():
            diffs.append(f"<h3>trial {trial.number}</h3>"
                         f"<pre>{e(diff.read_text(encoding='utf-8', errors='replace'))}</pre>")
    return "<h2>Source changes</h2>" + "".join(diffs) if diffs else ""


def _lineage(run: Run, rows: list[TrialRow]) -> str:
    parts = []
    for source, trial in warm_start_sources(rows):
        target = f"../{source}/report.html"
        name = e(source) + (f" (best trial {trial})" if trial is not None else "")
        parts.append(f"<a href='{e(target)}'>{name}</a>" if (run.dir / target).is_file() else name)
    return f"<p>Warm-started from {', '.join(parts)}.</p>" if parts else ""


def _curves(rows: list[TrialRow], record: Any) -> str:
    png = curves_plot(rows)
    if png is None:
        kind = f"{record.kind.framework}/{record.kind.architecture}" if record.kind else "this model"
        return (f"<h2>Training curves</h2><p class='note'>No per-epoch curves: {e(kind)} fits in one step "
                "(no epochs to draw).</p>")
    return ("<h2>Training curves</h2><p class='note'>Every trial, per epoch: training solid, validation dashed.</p>"
            f"<img class='curves' src='{data_uri(png)}' alt='training and validation curves per epoch'>")


def _why(record: Any) -> str:
    """How the run ended, unless the line before already says it (trial N reached ...)."""
    message = record.message or ""
    return "" if message.startswith(f"trial {record.best_trial} reached") else message


def render(run: Run, rows: list[TrialRow]) -> str:
    record = run.record()
    objective = Objective.of(record.config)
    metric = objective.metric
    best = next((r for r in rows if r.number == record.best_trial), None)
    plot = trial_plot(run, rows)
    best_hp = "".join(f"<tr><th>{e(k)}</th><td class='num'>{e(show(v))}</td></tr>" for k, v in best.hparams.items()) \
        if best else ""
    index = "<p><a href='../../index.html'>All runs</a></p>" if (run.store.home / "index.html").is_file() else ""
    kind = record.kind.framework + "/" + record.kind.architecture if record.kind else "?"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mlci — {e(record.model_name)}</title>
<style>{STYLE}</style></head><body>
<h1>{e(record.model_name)} — <span class="{'met' if record.status == RunStatus.MET else 'below'}">{e(headline(record.status))}</span></h1>
{index}
<p>Run <code>{e(record.run_id)}</code>, commit <code>{e(record.commit or 'working tree')}</code>,
model <code>{e(record.model_file)}</code>, kind {e(kind)}, image <code>{e(record.image or 'local')}</code>.</p>
{_lineage(run, rows)}
<p>Best: trial {best.number if best else '—'}, {e(metric)} <b>{fmt(record.best_value)}</b> against the threshold
{objective.threshold:g}. {e(_why(record))}</p>
<p>Started {e(record.created_at)}, finished {e(record.finished_at or '—')}; the run took
<b>{seconds_text(run_seconds(record))}</b>, its trials {seconds_text(sum(r.wall_seconds or 0 for r in rows))}
of training time in all.</p>
{f"<h2>Best hyperparameters</h2><table>{best_hp}</table>" if best_hp else ""}
{f"<img class='trials' src='{data_uri(plot)}' alt='{e(metric)} per trial'>" if plot else ""}
{_curves(rows, record)}
<h2>Trials</h2>
{_trial_table(run, rows, metric, record.best_trial)}
{_hparams_table(rows, record.best_trial)}
{_restarts(run)}
{_importances(run)}
{_diffs(run)}
</body></html>
"""


def _importances(run: Run) -> str:
    path = run.dir / "importances.html"
    return path.read_text(encoding="utf-8") if path.exists() else ""


def write_html(run: Run, rows: list[TrialRow] | None = None) -> Path:
    from mlci.integrations.reports.rows import trial_rows

    page = render(run, rows if rows is not None else trial_rows(run))
    path, tmp = run.dir / "report.html", run.dir / ".report.html.tmp"
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, path)
    return path
