"""What a person looks at: the trial table, report.png (metric per trial) and report.html.

Built only from the run store, so any job can (re)write it.
"""
from __future__ import annotations

import html
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlci.core.objective import Objective
from mlci.core.states import RunStatus, TrialStatus
from mlci.core.errors import MlciError
from mlci.core.store import Run


@dataclass
class TrialRow:
    number: int
    proposed_by: str
    change: str | None
    hparams: dict[str, Any]
    value: float | None
    epochs: int | None
    train_seconds: float | None
    wall_seconds: float | None
    status: str
    restarts: int
    reason: str | None


def trial_rows(run: Run) -> list[TrialRow]:
    """One row per proposed trial; an unreadable hparams.json, trial.json or metrics.json shows as a failed
    row with the reason, never as a hidden trial or a success without a value."""
    from mlci.core.store import TrialState

    rows = []
    for trial in run.trials():
        if not trial.hparams_path.exists():
            continue  # claimed, not yet proposed
        problems = []
        try:
            hp = trial.hparams()
        except MlciError as err:
            hp = None
            problems.append(err.message)
        metrics = None
        if trial.has_metrics():
            try:
                metrics = trial.metrics()
            except MlciError as err:
                problems.append(err.message)
        try:
            state, status = trial.state(), trial.status()
        except MlciError as err:
            state, status = TrialState(trial=trial.number), TrialStatus.FAILED
            problems.append(err.message)
        if problems:
            status = TrialStatus.FAILED
        epochs = metrics.epochs_done if metrics else None
        if status == TrialStatus.PRUNED:
            from mlci.tuning.pruning import read_pruned

            pruned = read_pruned(trial)
            epochs = pruned.epoch if pruned else None
        rows.append(TrialRow(trial.number, hp.proposed_by if hp else "unreadable", hp.change if hp else None,
                             hp.hparams if hp else {}, metrics.value if metrics else None, epochs,
                             metrics.train_seconds if metrics else None, state.wall_seconds, status,
                             len(state.restarts), "; ".join(problems) or state.reason))
    return rows


HEADLINES = {RunStatus.MET: "reached the threshold", RunStatus.EXHAUSTED: "budget spent below the threshold",
             RunStatus.FAILED: "failed", RunStatus.RUNNING: "running", RunStatus.CREATED: "created",
             RunStatus.INTERRUPTED: "interrupted"}


def headline(status: RunStatus) -> str:
    """The report's headline for a run's status (what a person sees first)."""
    return HEADLINES[RunStatus(status)]


def write_plot(run: Run, rows: list[TrialRow] | None = None) -> Path | None:
    """report.png: the metric of each trial against the threshold, the best trial marked."""
    rows = rows if rows is not None else trial_rows(run)
    measured = [r for r in rows if r.value is not None]
    if not measured:
        return None
    os.environ.setdefault("MPLBACKEND", "Agg")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    record = run.record()
    objective = Objective.of(record.config)
    metric, threshold = objective.metric, objective.threshold
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=110)
    xs = [r.number for r in measured]
    ys = [r.value for r in measured]
    colors = ["#2e7d32" if objective.met(v) else "#c62828" for v in ys]
    ax.plot(xs, ys, color="#90a4ae", linewidth=1, zorder=1)
    ax.scatter(xs, ys, c=colors, s=42, zorder=2)
    ax.axhline(threshold, color="#1565c0", linestyle="--", linewidth=1, label=f"threshold {threshold:g}")
    if record.best_trial is not None and record.best_value is not None:
        ax.scatter([record.best_trial], [record.best_value], s=160, facecolors="none", edgecolors="#000",
                   linewidths=1.4, zorder=3, label=f"best: trial {record.best_trial}")
    ax.set_xlabel("trial")
    ax.set_ylabel(metric)
    ax.set_xticks(xs)
    ax.set_title(f"{record.model_name}: {metric} per trial")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path = run.dir / "report.png"
    tmp = run.dir / ".report.png.tmp"
    fig.savefig(tmp, format="png")
    plt.close(fig)
    os.replace(tmp, path)
    return path


def _fmt(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def write_html(run: Run, rows: list[TrialRow] | None = None) -> Path:
    rows = rows if rows is not None else trial_rows(run)
    record = run.record()
    metric, threshold = record.config.metric, record.config.threshold
    best = next((r for r in rows if r.number == record.best_trial), None)
    e = html.escape
    body_rows = []
    for r in rows:
        cls = "best" if best and r.number == best.number else ""
        hp = ", ".join(f"{k}={v}" for k, v in r.hparams.items())
        body_rows.append(
            f"<tr class='{cls}'><td>{r.number}</td><td>{e(r.proposed_by)}</td><td>{e(r.change or '')}</td>"
            f"<td><code>{e(hp)}</code></td><td>{_fmt(r.value)}</td><td>{r.epochs if r.epochs is not None else '—'}</td>"
            f"<td>{_fmt(r.train_seconds, 1)}</td><td>{e(r.status)}</td><td>{r.restarts}</td>"
            f"<td>{e(r.reason or '')}</td></tr>")
    extra = ""
    importances = run.dir / "importances.html"
    if importances.exists():
        extra = importances.read_text(encoding="utf-8")
    diffs = []
    for trial in run.trials():
        diff = trial.dir / "model.diff"
        if diff.exists():
            diffs.append(f"<h3>trial {trial.number}</h3><pre>{e(diff.read_text(encoding='utf-8', errors='replace'))}</pre>")
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
    restart_table = ("<h2>Restarts</h2><p>A trial whose process or container died was started again and resumed "
                     "from its checkpoint (job 6, the monitor).</p><table><tr><th>trial</th><th>at</th><th>reason</th>"
                     "<th>exit code</th><th>resumed from</th></tr>" + "".join(restarts) + "</table>") if restarts else ""
    outcome = headline(record.status)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mlci — {e(record.model_name)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; font-size: 14px; }} td, th {{ border: 1px solid #ccc; padding: 4px 8px; }}
tr.best {{ background: #e8f5e9; font-weight: 600; }} code {{ font-size: 12px; }}
.met {{ color: #2e7d32; }} .below {{ color: #c62828; }}
</style></head><body>
<h1>{e(record.model_name)} — <span class="{'met' if record.status == RunStatus.MET else 'below'}">{e(outcome)}</span></h1>
<p>Run <code>{e(record.run_id)}</code>, commit <code>{e(record.commit or 'working tree')}</code>,
model <code>{e(record.model_file)}</code>, kind {e(record.kind.framework + '/' + record.kind.architecture if record.kind else '?')},
image <code>{e(record.image or 'local')}</code>.</p>
<p>Best: trial {best.number if best else '—'}, {e(metric)} <b>{_fmt(record.best_value)}</b> against the threshold {threshold:g}.</p>
<p>Best hyperparameters: <code>{e(str(best.hparams) if best else '—')}</code></p>
<img src="report.png" alt="{e(metric)} per trial" width="700">
<h2>Trials</h2>
<table><tr><th>#</th><th>proposed by</th><th>change</th><th>hyperparameters</th><th>{e(metric)}</th><th>epochs</th>
<th>fit s</th><th>status</th><th>restarts</th><th>reason</th></tr>
{''.join(body_rows)}
</table>
{restart_table}
{extra}
{'<h2>Source changes</h2>' + ''.join(diffs) if diffs else ''}
<p><small>Started {e(record.created_at)}, finished {e(record.finished_at or '—')}.</small></p>
</body></html>
"""
    path = run.dir / "report.html"
    tmp = run.dir / ".report.html.tmp"
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, path)
    return path


def _tuning_summary(run: Run) -> None:
    """Let the run's strategy tell its study the last results and write importances.html."""
    try:
        from mlci.tuning.tweak import strategy_for

        finish = getattr(strategy_for(run), "finish", None)
        if finish is not None:
            finish()
    except Exception:  # the report shows the trials even when the study cannot be read
        pass


def write_report(run: Run) -> tuple[Path | None, Path]:
    _tuning_summary(run)
    rows = trial_rows(run)
    return write_plot(run, rows), write_html(run, rows)
