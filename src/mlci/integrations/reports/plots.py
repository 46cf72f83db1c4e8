"""The report's pictures: report.png (the metric per trial, also mailed) and the per-epoch curves.

Matplotlib with the Agg backend: no display, and a PNG's bytes that the page embeds as a data URI.
"""
from __future__ import annotations

import base64
import io
import os
from pathlib import Path
from typing import Any

from mlci.core.objective import Objective
from mlci.core.store import Run
from mlci.integrations.reports.rows import TrialRow


def import_ahead() -> None:
    """What drawing the report imports, imported now (a driver calls it in the background while trials train)."""
    _pyplot()


def _pyplot() -> Any:
    os.environ.setdefault("MPLBACKEND", "Agg")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    _pyplot().close(fig)
    return buffer.getvalue()


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def trial_plot(run: Run, rows: list[TrialRow]) -> bytes | None:
    """The metric of each trial against the threshold, the best trial marked (None: nothing measured)."""
    measured = [r for r in rows if r.value is not None]
    if not measured:
        return None
    plt = _pyplot()
    record = run.record()
    objective = Objective.of(record.config)
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=110)
    xs = [r.number for r in measured]
    ys = [r.value for r in measured]
    colors = ["#2e7d32" if objective.met(v) else "#c62828" for v in ys]
    ax.plot(xs, ys, color="#90a4ae", linewidth=1, zorder=1)
    ax.scatter(xs, ys, c=colors, s=42, zorder=2)
    ax.axhline(objective.threshold, color="#1565c0", linestyle="--", linewidth=1,
               label=f"threshold {objective.threshold:g}")
    if record.best_trial is not None and record.best_value is not None:
        ax.scatter([record.best_trial], [record.best_value], s=160, facecolors="none", edgecolors="#000",
                   linewidths=1.4, zorder=3, label=f"best: trial {record.best_trial}")
    ax.set_xlabel("trial")
    ax.set_ylabel(objective.metric)
    ax.set_xticks(xs)
    ax.set_title(f"{record.model_name}: {objective.metric} per trial")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return _png(fig)


def write_plot(run: Run, rows: list[TrialRow] | None = None) -> Path | None:
    """report.png (what the email attaches); None when no trial has a metric yet."""
    from mlci.integrations.reports.rows import trial_rows

    png = trial_plot(run, rows if rows is not None else trial_rows(run))
    if png is None:
        return None
    path, tmp = run.dir / "report.png", run.dir / ".report.png.tmp"
    tmp.write_bytes(png)
    os.replace(tmp, path)
    return path


def _panels(rows: list[TrialRow]) -> list[tuple[str, str]]:
    """(history key, validation key) pairs to draw: loss first, then each metric logged per epoch."""
    keys: list[str] = []
    for row in rows:
        for key in row.curves:
            base = key[4:] if key.startswith("val_") else key
            if base not in keys:
                keys.append(base)
    keys.sort(key=lambda k: (k != "loss", k))
    return [(k, f"val_{k}") for k in keys[:2]]


def curves_plot(rows: list[TrialRow]) -> bytes | None:
    """One figure, every trial: training (solid) and validation (dashed) per epoch, a panel per quantity.

    None when no trial logged an epoch (a classical model fits in one step)."""
    drawn = [r for r in rows if any(r.curves.values())]
    panels = _panels(drawn)
    if not drawn or not panels:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(5.6 * len(panels), 3.8), dpi=100, squeeze=False)
    palette = plt.get_cmap("tab10")
    for ax, (train_key, val_key) in zip(axes[0], panels):
        for index, row in enumerate(drawn):
            color = palette(index % 10)
            for key, style in ((train_key, "-"), (val_key, "--")):
                values = row.curves.get(key) or []
                if values:
                    epochs = list(range(1, len(values) + 1))
                    label = f"trial {row.number}" + (" (validation)" if key == val_key else "")
                    ax.plot(epochs, values, style, color=color, marker="o", markersize=3, linewidth=1.3,
                            label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(train_key)
        ax.set_title(f"{train_key}: training — solid, validation — dashed", fontsize=10)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    keep = [(h, lab) for h, lab in zip(handles, labels) if "validation" not in lab]
    if keep:
        fig.legend([h for h, _ in keep], [lab for _, lab in keep], loc="center right", fontsize=8)
    fig.tight_layout(rect=(0, 0, 0.86 if keep else 1, 1))
    return _png(fig)
