"""Reading runs back: the trial table of a run (history), its report, the list and index of runs,
and Optuna's dashboard on a run's study.

Read-only over the run store, except `report`, which rewrites report.html, report.png and index.html.
"""
from __future__ import annotations

import click

from mlci.cli._common import (SEE_EXIT_HELP, _open, handle_errors, home_option, out, run_option,
                              store_for)


def trial_table(run, width: int | None = None):
    """The trials in order, one line each at any width (the whole change is in report.html)."""
    from rich.table import Table

    from mlci.integrations.reports import trial_rows

    record = run.record()
    rows = trial_rows(run)
    cells = [[str(row.number), row.proposed_by, row.change or "", "—" if row.value is None else f"{row.value:.4f}",
              "—" if row.epochs is None or not row.curves else str(row.epochs),
              "—" if row.train_seconds is None else f"{row.train_seconds:.1f}",
              row.status + (f" ({row.restarts} restarts)" if row.restarts else "")] for row in rows]
    heads = ["#", "proposed by", "change", record.config.metric, "epochs", "fit s", "status"]
    fits = [max([len(head)] + [len(line[i]) for line in cells]) for i, head in enumerate(heads)]
    fits[1] = min(fits[1], 14)
    # What the console leaves for the change (3: padding and a border per column; 4: the last border and slack).
    free = max(12, (width or out.width) - sum(fits[i] + 3 for i in range(len(heads)) if i != 2) - 4)
    table = Table(title=f"{record.model_name} — run {run.id}")
    for i, head in enumerate(heads):
        table.add_column(head, no_wrap=True, overflow="ellipsis", max_width=free if i == 2 else fits[i],
                         justify="right" if i in (0, 3, 4, 5) else "left")
    for row, line in zip(rows, cells):
        table.add_row(*line, style="bold green" if row.number == record.best_trial else None)
    return table


def top_table(run, top: int):
    """The best `top` trials by the run's objective, best first, with their hyperparameters
    (KerasTuner's results_summary)."""
    from rich.table import Table

    from mlci.core.objective import Objective
    from mlci.integrations.reports import ranked, trial_rows

    record = run.record()
    metric = record.config.metric
    rows = ranked(trial_rows(run), Objective.of(record.config))[:top]
    table = Table(title=f"{record.model_name} — run {run.id}: best {len(rows)} by {metric}", show_lines=True)
    for head in ("rank", "trial", metric, "hyperparameters", "proposed by"):
        table.add_column(head, justify="right" if head in ("rank", "trial", metric) else "left",
                         no_wrap=head != "hyperparameters", overflow="fold")
    for rank, row in enumerate(rows, 1):
        table.add_row(str(rank), str(row.number), f"{row.value:.4f}",
                      "\n".join(f"{k} = {v}" for k, v in row.hparams.items()), row.proposed_by,
                      style="bold green" if row.number == record.best_trial else None)
    return table


@click.command(epilog=SEE_EXIT_HELP)
@run_option
@click.option("--top", type=click.IntRange(min=1), help="Only the best N trials, best first (by the run's objective), "
                                                       "with their hyperparameters.")
@home_option
@handle_errors
def history(run_id, top, home):
    """The trial table of a run."""
    _, run_ = _open(home, run_id)
    out.print(trial_table(run_) if top is None else top_table(run_, top))


@click.command(epilog=SEE_EXIT_HELP)
@click.option("--run", "run_id", envvar="RUN_ID", help="Run id [env RUN_ID]; required unless --all.")
@click.option("--all", "all_runs", is_flag=True, help="Rewrite every run's report and the store's index.html.")
@home_option
@handle_errors
def report(run_id, all_runs, home):
    """(Re)write report.html and report.png of a run, and index.html of the store (every run, its lineage)."""
    from mlci.integrations.reports import write_index, write_report

    store = store_for(home)
    if all_runs:
        for run_ in store.runs():
            write_report(run_)
        click.echo(write_index(store).resolve())
        return
    if not run_id:
        raise click.UsageError("Missing option '--run' (or set RUN_ID), or pass --all")
    _, run_ = _open(home, run_id)
    png, page = write_report(run_)
    click.echo(f"{page.resolve()}" + (f"\n{png.resolve()}" if png else ""))


@click.command(name="runs", epilog=SEE_EXIT_HELP)
@home_option
@handle_errors
def list_runs(home):
    """The runs in the store, newest last."""
    from mlci.core.errors import MlciError

    store = store_for(home)
    runs = store.runs()
    if not runs:
        click.echo(f"no runs in {store.runs_dir.resolve()}: start one with `mlci run MODEL_FILE`")
        return
    # Plain aligned columns, like `docker ps`: a run id is never cut or folded, people copy it whole.
    lines = [("RUN", "MODEL", "STATUS", "BEST", "TRIALS", "COMMIT")]
    for run_ in runs:
        try:
            record = run_.record()
        except MlciError as err:  # one damaged run never hides the others
            lines.append((run_.id, "?", "unreadable", "—", "—", "—"))
            click.echo(f"mlci: warning: {err.one_line()}", err=True)
            continue
        lines.append((run_.id, record.model_name, str(record.status),
                      "—" if record.best_value is None else f"{record.best_value:.4f}", str(len(run_.trials())),
                      (record.commit or "—")[:10]))
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    for line in lines:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip())


@click.command(epilog=SEE_EXIT_HELP)
@run_option
@home_option
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@click.option("--command", "print_only", is_flag=True, help="Print the optuna-dashboard command instead of running it.")
@handle_errors
def dashboard(run_id, home, port, print_only):
    """Optuna's dashboard on the run's study (history, importances, slice, parallel coordinates), on 127.0.0.1."""
    import shlex
    import sys
    from pathlib import Path

    from mlci.core.errors import UsageError
    from mlci.tuning.study import storage_url

    _, run_ = _open(home, run_id)
    url = storage_url(run_, run_.record().config.storage)
    if url.startswith("sqlite:") and not run_.study_path.exists():
        raise UsageError(f"run {run_id} has no study ({run_.study_path} not found)",
                         hint="only the optuna and random strategies keep one (strategy = \"optuna\" in mlci.toml)")
    exe = Path(sys.executable).with_name("optuna-dashboard")
    command = [str(exe) if exe.exists() else "optuna-dashboard", url, "--host", "127.0.0.1", "--port", str(port)]
    if print_only:
        click.echo(shlex.join(command))
        return
    try:
        from optuna_dashboard import run_server
    except ImportError:
        raise UsageError("optuna-dashboard is not installed",
                         hint="pip install 'mlci[dashboard]', or run: " + shlex.join(command)) from None
    click.echo(f"Optuna dashboard of run {run_id}: http://127.0.0.1:{port}/  (Ctrl-C stops it)", err=True)
    run_server(url, host="127.0.0.1", port=port)
