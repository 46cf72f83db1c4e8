"""What the console shows a person at 80 columns: run ids whole, one line per trial, no Python
literals, no stuck epoch bar, the verdict once, and mail that names an absolute run folder."""
from __future__ import annotations

import os
import re

from click.testing import CliRunner

from conftest import KNN_SOURCE, write_model
from mlci.cli import main
from mlci.cli.pipeline import RichEvents, verdict_line
from mlci.core.store import RunStore
from mlci.integrations.message import outcome_facts
from mlci.orchestration.oracle import RunOracle
from mlci.orchestration.pipeline import run_pipeline

LONG_NAME = "handwritten_digits_k_nearest_neighbours_classifier.py"


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), prog_name="mlci", env={"COLUMNS": "80"})


def knn_run(tmp_path, home, max_trials: int = 3):
    model = write_model(tmp_path / "knn", KNN_SOURCE, LONG_NAME,
                        f'threshold = 0.97\nmax_trials = {max_trials}\ndataset = "digits"\nrunner = "local"\n'
                        'strategy = "ladder"\n')
    return run_pipeline(model, store=RunStore(home), notify_outcome=False)


def test_console_after_a_knn_run(tmp_path, home):
    result = knn_run(tmp_path, home)
    run = result.run
    assert len(run.id) > 50  # longer than a folded 80-column cell
    listed = invoke("runs", "--home", str(home))
    assert listed.exit_code == 0
    [row] = [line for line in listed.output.splitlines() if line.startswith(run.id + " ")]  # whole, copyable
    assert row.split()[1:5] == [run.record().model_name, "met", f"{run.record().best_value:.4f}", str(len(run.trials()))]
    # A change as the Optuna strategy writes it for a six-knob network (a KNN's own are short).
    spec = run.trial(1).hparams()
    run.trial(1).write_hparams(spec.model_copy(update={"change": "dense_layers 1 -> 2, units 16 -> 91, dropout 0 -> "
                                                                 "0.25, epochs 2 -> 10, batch_size 64 -> 32"}))
    history = invoke("history", "--run", run.id, "--home", str(home))
    body = history.output.split("┡", 1)[1].split("└", 1)[0].splitlines()[1:]
    rows = [line for line in body if re.match(r"^│\s*\d+\s*│", line)]
    assert len(rows) == len(body) == len(run.trials()) >= 2, history.output  # one line per trial: never wraps
    assert "dense_layers" in history.output and history.output.count("succeeded") == len(rows)  # status whole
    assert all(len(line) <= 80 for line in history.output.splitlines())
    assert all(line.split("│")[5].strip() == "—" for line in rows)  # a KNN has no epochs to count
    status = invoke("status", "--run", run.id, "--home", str(home))
    assert status.exit_code == 0
    values = [line.split(": ", 1)[1] for line in status.output.splitlines()]
    assert not {"None", "True", "False"} & set(values), status.output
    assert "finished: yes" in status.output and "next_trial: —" in status.output


def test_verdict_is_said_once(tmp_path, home):
    outcome = knn_run(tmp_path, home).outcome
    assert outcome.status == "met" and outcome.message.startswith(f"trial {outcome.best_trial} reached")
    line = verdict_line(outcome)
    assert line.count(f"{outcome.best_value:.4f}") == 1, line
    assert line.startswith("[bold green]threshold met[/bold green]: trial")


def test_verdict_of_a_spent_budget_names_the_best_and_why(tmp_path, home):
    result = knn_run(tmp_path, home, max_trials=1)
    outcome = RunOracle(result.run).outcome()
    assert outcome.status == "exhausted"
    assert verdict_line(outcome) == (f"[bold red]budget spent below the threshold[/bold red]: best accuracy "
                                     f"{outcome.best_value:.4f} (trial 0); {outcome.message}")


def test_empty_store_says_so_instead_of_an_empty_table(tmp_path):
    done = invoke("runs", "--home", str(tmp_path / "nothing"))
    assert done.exit_code == 0
    assert done.output == f"no runs in {tmp_path / 'nothing' / 'runs'}: start one with `mlci run MODEL_FILE`\n"


def test_a_model_without_epochs_gets_no_epoch_bar(tmp_path, home):
    run = knn_run(tmp_path, home, max_trials=1).run
    [trial] = run.trials()
    events = RichEvents(max_trials=1, quiet=True)
    events.trial_started(trial, trial.hparams())
    events.trial_progress(trial, 0, None, None)  # the heartbeat of a fit without epochs
    assert [task.description for task in events.progress.tasks] == ["trials"]
    events.trial_progress(trial, 1, 3, 0.5)  # a script's fit announces its epochs late: the bar comes then
    assert [(t.total, t.completed) for t in events.progress.tasks[1:]] == [(3, 1)]


def test_the_mail_names_an_absolute_run_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = knn_run(tmp_path, "relative-store", max_trials=1).run
    facts = outcome_facts(run, run.record(), "budget-exhausted", None)
    assert os.path.isabs(facts["run_dir"]) and facts["run_dir"] == str((tmp_path / "relative-store" / "runs" / run.id))
