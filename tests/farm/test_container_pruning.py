"""Pruning inside Docker containers when the study lives on a PostgreSQL server: the container has no network
and no credentials; the process that follows it relays its epochs to the study and answers the pruner."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import write_model
from mlci.core.store import RunStore
from mlci.harness.train import train_trial
from mlci.orchestration.lifecycle import follow, launch_trial
from mlci.orchestration.oracle import RunOracle
from mlci.orchestration.runs import prepare_run
from mlci.tuning.tweak import tweak
from pgserver import pg_url, postgres_password  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.docker, pytest.mark.postgres, pytest.mark.slow]

SGD = '''
    """A linear model trained epoch by epoch (partial_fit), so a study can prune it."""
    from sklearn.linear_model import SGDClassifier

    HPARAMS = {"epochs": 6, "alpha": 0.0001}


    def build_model(hp):
        return SGDClassifier(alpha=hp["alpha"], random_state=0)
'''


def test_a_hopeless_trial_in_a_container_is_pruned_through_the_study_on_the_server(
        engine, tmp_path, docker_home, pg_url, postgres_password):  # noqa: F811
    import optuna

    from mlci.runners.docker import DockerRunner
    from mlci.tuning.study import open_storage, study_name

    model = write_model(tmp_path / "m", SGD, "sgd.py",
                        'threshold = 1.0\ndataset = "digits"\n'
                        '[space]\nalpha = {type = "float", low = 1e-5, high = 1e-3, log = true}\n')
    run, config = prepare_run(model, store=RunStore(docker_home),
                              overrides={"max_trials": 10, "storage": pg_url, "runner": "docker"})
    # The earlier trials train here and report to the server themselves: the pruner has something to compare.
    for trial in [RunOracle(run).ask().trial, tweak(run, config), tweak(run, config)]:
        trial.write_hparams(trial.hparams().model_copy(update={"dataset": "digits"}))
        assert train_trial(trial.dir, Path(run.record().model_file), echo=lambda _: None) is not None
        trial.update_state(status="succeeded")
        RunOracle(run).tell(trial)
    trial = tweak(run, config)
    record = trial.hparams()
    assert record.optuna.storage == pg_url and record.optuna.pruner["name"] == "median"
    record.hparams["alpha"] = 50.0  # a huge regularisation: accuracy stays near chance
    trial.write_hparams(record)

    runner = DockerRunner(engine)
    handle = launch_trial(run, trial, runner, config)
    container = engine.containers.get(handle)
    env = container.attrs["Config"]["Env"]
    assert container.attrs["HostConfig"]["NetworkMode"] == "none"  # it could not reach the server anyway
    assert not [line for line in env if line.startswith("PG") or postgres_password in line or "postgresql" in line]
    state = follow(run, trial, runner, handle, config)

    log = trial.log_path.read_text()
    assert state.status == "pruned", log
    assert state.reason.startswith("pruned at epoch 2 (val_accuracy ")
    assert json.loads((trial.dir / "pruned.json").read_text())["epoch"] == 2
    assert "pruning is off" not in log and not trial.has_metrics()
    assert postgres_password not in "".join(p.read_text(errors="replace") for p in trial.dir.rglob("*") if p.is_file())
    study = optuna.load_study(study_name=study_name(run), storage=open_storage(pg_url))
    assert sorted(study.trials[record.optuna.trial].intermediate_values) == [1, 2]  # relayed by the follower
    tweak(run, config)  # the next proposal tells the study the trial's end
    study = optuna.load_study(study_name=study_name(run), storage=open_storage(pg_url))
    assert study.trials[record.optuna.trial].state == optuna.trial.TrialState.PRUNED
    assert trial.state().status == "pruned"
