"""Relayed pruning: a trial that cannot reach its study (a container: no network, no credentials) writes its
epochs; the process that follows it reports them to the study and answers the pruner's decision.

These tests run the relay with real trial processes (a LocalRunner told to relay, as the DockerRunner always
does); tests/farm/test_container_pruning.py runs it with a real container and a real PostgreSQL study.
"""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

from conftest import write_model
from mlci.core.store import RunStore
from mlci.harness.train import train_trial
from mlci.orchestration.lifecycle import follow, launch_trial
from mlci.orchestration.oracle import RunOracle
from mlci.orchestration.runs import prepare_run
from mlci.runners import LocalRunner
from mlci.tuning import pruning
from mlci.tuning.tweak import tweak

SGD = textwrap.dedent('''
    """A linear model trained epoch by epoch (partial_fit), so a study can prune it."""
    from sklearn.linear_model import SGDClassifier

    HPARAMS = {"epochs": 6, "alpha": 0.0001}


    def build_model(hp):
        return SGDClassifier(alpha=hp["alpha"], random_state=0)
''')
SPACE = 'threshold = 1.0\ndataset = "digits"\n[space]\nalpha = {type = "float", low = 1e-5, high = 1e-3, log = true}\n'


def trained_here(run, trial):
    """Train a trial in this process, reporting to the study directly, and record its end."""
    trial.write_hparams(trial.hparams().model_copy(update={"dataset": "digits"}))
    metrics = train_trial(trial.dir, Path(run.record().model_file), echo=lambda _: None)
    trial.update_state(status="succeeded" if metrics else "pruned")
    RunOracle(run).tell(trial)


def hopeless_proposal(tmp_path, home, storage=None):
    """A run whose baseline and two proposals trained, and a third proposal that cannot learn."""
    model = write_model(tmp_path / "m", SGD, "sgd.py", SPACE)
    run, config = prepare_run(model, store=RunStore(home), overrides={"max_trials": 10, "storage": storage})
    trained_here(run, RunOracle(run).ask().trial)
    for _ in range(2):
        trained_here(run, tweak(run, config))
    trial = tweak(run, config)
    record = trial.hparams()
    record.hparams["alpha"] = 50.0  # a huge regularisation: accuracy stays near chance
    trial.write_hparams(record)
    return run, config, trial


class RelayingRunner(LocalRunner):
    """A real local trial process that, like a container, reports through its follower (MLCI_PRUNING=relay)."""

    relays_pruning = True


def study_trial(run, number):
    import optuna

    from mlci.tuning.study import open_storage, storage_url, study_name

    study = optuna.load_study(study_name=study_name(run), storage=open_storage(storage_url(run, run.record().config.storage)))
    return study.trials[number]


def test_a_trial_that_reports_through_its_follower_is_pruned(tmp_path, home, monkeypatch):
    run, config, trial = hopeless_proposal(tmp_path, home)
    monkeypatch.setenv(pruning.RELAY_ENV, "relay")  # the trial's process inherits it, as a container has it
    runner = RelayingRunner()
    state = follow(run, trial, runner, launch_trial(run, trial, runner, config), config)
    assert state.status == "pruned", trial.log_path.read_text()
    pruned = json.loads((trial.dir / "pruned.json").read_text())
    assert pruned["epoch"] == 2 and state.reason.startswith("pruned at epoch 2 (val_accuracy ")
    assert json.loads((trial.dir / pruning.ANSWER_FILE).read_text()) == {"step": 2, "prune": True}
    assert "pruning is off" not in trial.log_path.read_text()
    number = trial.hparams().optuna.trial
    assert sorted(study_trial(run, number).intermediate_values) == [1, 2]  # reported by the follower
    tweak(run, config)  # the next proposal tells the study the trial's end
    assert study_trial(run, number).state.name == "PRUNED"


def test_without_a_follower_the_trial_waits_once_then_trains_to_the_end(tmp_path, home, monkeypatch):
    run, config, trial = hopeless_proposal(tmp_path, home)
    monkeypatch.setenv(pruning.RELAY_ENV, "relay")
    monkeypatch.setattr(pruning, "RELAY_WAIT", 0.3)
    pruning.PruningRelay.attach(trial)  # announced (as at launch), but no process follows the trial
    trial.write_hparams(trial.hparams().model_copy(update={"dataset": "digits"}))
    seen: list[str] = []
    metrics = train_trial(trial.dir, Path(run.record().model_file), echo=seen.append)
    assert metrics is not None and metrics.epochs_done == trial.hparams().hparams["epochs"]
    assert [line for line in seen if "no pruning answer" in line] == [
        "mlci: no pruning answer for epoch 1 within 0.3s; training on"]


def test_a_follower_that_cannot_reach_the_study_turns_pruning_off_and_says_so(tmp_path, home, monkeypatch):
    run, config, trial = hopeless_proposal(tmp_path, home)
    record = trial.hparams()
    record.optuna.storage = "postgresql://mlci@127.0.0.1:1/nowhere"  # no server there
    trial.write_hparams(record)
    monkeypatch.setenv(pruning.RELAY_ENV, "relay")
    notices: list[str] = []

    class Events:
        def notice(self, text):
            notices.append(text)

    runner = RelayingRunner()
    state = follow(run, trial, runner, launch_trial(run, trial, runner, config), config, Events())
    assert state.status == "succeeded" and trial.metrics().epochs_done == trial.hparams().hparams["epochs"]
    assert any(line.startswith(f"trial {trial.number}: pruning is off (") for line in notices), notices
    assert "warning: pruning is off for this trial (" in trial.log_path.read_text()
