"""Reading runs back: the trial table of a run (history), its report, and the list of runs.

Read-only over the run store, except `report`, which rewrites report.html and report.png.
"""
from __future__ import annotations

import click

from mlci.cli._common import (SEE_EXIT_HELP, _open, console, handle_errors, home_option, out, run_option,
                              store_for)


def trial_table(run):
    from rich.table import Table

    from mlci.integrations.report import trial_rows

    record = run.record()
    metric = record.config.metric
    table = Table(title=f"{record.model_name} — run {run.id}", show_lines=False)
    for column in ("#", "proposed by", "change", metric, "epochs", "fit s", "status"):
        table.add_column(column, justify="right" if column in ("#", metric, "epochs", "fit s") else "left")
    for row in trial_rows(run):
        style = "bold green" if row.number == record.best_trial else None
        table.add_row(str(row.number), row.proposed_by, row.change or "", "—" if row.value is None else f"{row.value:.4f}",
                      "—" if row.epochs is None else str(row.epochs),
                      "—" if row.train_seconds is None else f"{row.train_seconds:.1f}",
                      row.status + (f" ({row.restarts} restarts)" if row.restarts else ""), style=style)
    return table


@click.command(epilog=SEE_EXIT_HELP)
@run_option
@home_option
@handle_errors
def history(run_id, home):
    """The trial table of a run."""
    _, run_ = _open(home, run_id)
    out.print(trial_table(run_))


@click.command(epilog=SEE_EXIT_HELP)
@run_option
@home_option
@handle_errors
def report(run_id, home):
    """(Re)write report.html and report.png of a run."""
    from mlci.integrations.report import write_report

    _, run_ = _open(home, run_id)
    png, page = write_report(run_)
    click.echo(f"{page}" + (f"\n{png}" if png else ""))


@click.command(name="runs", epilog=SEE_EXIT_HELP)
@home_option
@handle_errors
def list_runs(home):
    """The runs in the store, newest last."""
    from rich.table import Table

    table = Table()
    for column in ("run", "model", "status", "best", "trials", "commit"):
        table.add_column(column)
    from mlci.core.errors import MlciError

    for run_ in store_for(home).runs():
        try:
            record = run_.record()
        except MlciError as err:  # one damaged run never hides the others
            table.add_row(run_.id, "?", "unreadable", "—", "—", "")
            console.print(f"mlci: warning: {err.one_line()}")
            continue
        table.add_row(run_.id, record.model_name, record.status,
                      "—" if record.best_value is None else f"{record.best_value:.4f}", str(len(run_.trials())),
                      (record.commit or "")[:10])
    out.print(table)
