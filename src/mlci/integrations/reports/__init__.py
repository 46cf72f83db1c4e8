"""What a person looks at: report.html and report.png of a run, index.html of the store.

Built only from the run store, so any job can (re)write them.
"""
from __future__ import annotations

from pathlib import Path

from mlci.core.store import Run
from mlci.integrations.reports.index import write_index
from mlci.integrations.reports.page import headline, write_html
from mlci.integrations.reports.plots import write_plot
from mlci.integrations.reports.rows import TrialRow, ranked, trial_rows

__all__ = ["TrialRow", "headline", "ranked", "trial_rows", "write_html", "write_index", "write_plot",
           "write_report"]


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
    """report.png and report.html of the run, and the store's index.html (which links to it)."""
    _tuning_summary(run)
    rows = trial_rows(run)
    png = write_plot(run, rows)
    try:
        write_index(run.store)
    except OSError:
        pass  # a store another user owns the top of: the run's own report still matters
    return png, write_html(run, rows)
