"""Tuning: Optuna proposals inside the space, a study that survives a kill, warm start, pruning, bad spaces."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import KERAS_DIGITS_SOURCE, ROOT, mlci, write_model
from mlci.core.errors import ConfigError
from mlci.orchestration.lifecycle import follow, launch_trial
from mlci.orchestration.oracle import RunOracle
from mlci.orchestration.runs import prepare_run
from mlci.runners import LocalRunner
from mlci.tuning.spaces import parse_space, space_for
from mlci.core.store import RunStore
from mlci.harness.train import train_trial
from mlci.tuning.tweak import strategy_for, tweak

KNN3 = '''
    """k nearest neighbours with three knobs."""
    from sklearn.neighbors import KNeighborsClassifier

    HPARAMS = {"n_neighbors": 60, "weights": "uniform", "p": 2}


    def build_model(hp):
        return KNeighborsClassifier(n_neighbors=hp["n_neighbors"], weights=hp["weights"], p=hp["p"])
'''

SGD = '''
    """A linear model trained epoch by epoch (partial_fit), so a study can prune it."""
    from sklearn.linear_model import SGDClassifier

    HPARAMS = {"epochs": 5, "alpha": 0.0001}


    def build_model(hp):
        return SGDClassifier(alpha=hp["alpha"], random_state=0)
'''


def train_here(run, trial, seed=0):
    """Train one proposal in this process (the harness's own function) and record it like the pipeline does."""
    trial.write_hparams(trial.hparams().model_copy(update={"dataset": "digits", "seed": seed}))
    metrics = train_trial(trial.dir, Path(run.record().model_file), echo=lambda _: None)
    trial.update_state(status="succeeded" if metrics else "pruned")
    RunOracle(run).tell(trial)
    return metrics


def start(model, home, **overrides):
    return prepare_run(model, store=RunStore(home), overrides={"dataset": "digits", **overrides})


def drive(run, config, trials):
    """Baseline, then `trials` proposals of the run's strategy, each trained for real."""
    if not run.trials():
        train_here(run, RunOracle(run).ask().trial)
    for _ in range(trials):
        trial = tweak(run, config)
        assert trial is not None
        train_here(run, trial)
    return run


def optuna_link(trial):
    return trial.hparams().optuna_link()


def study_of(run):
    import optuna

    from mlci.tuning.study import open_storage, storage_url, study_name

    return optuna.load_study(study_name=study_name(run), storage=open_storage(storage_url(run, None)))


# ----------------------------------------------------------------------------- spaces and proposals


def test_proposals_stay_inside_the_space_and_trial_0_is_the_baseline(tmp_path, home):
    model = write_model(tmp_path / "m", KNN3, "knn3.py", textwrap.dedent('''
        threshold = 1.0
        [space]
        n_neighbors = {type = "int", low = 2, high = 9}
    '''))
    run, config = start(model, home, max_trials=10)
    assert config.strategy == "optuna"  # the default
    drive(run, config, 9)
    records = [t.hparams() for t in run.trials()]
    assert records[0].proposed_by == "baseline" and records[0].hparams == {"n_neighbors": 60, "weights": "uniform", "p": 2}
    assert records[1].proposed_by == "optuna:centre"
    seen = set()
    for record in records[1:]:
        hp = record.hparams
        # [space] overrides the built-in 1..50; the range is widened only to hold the baseline (60)
        assert 2 <= hp["n_neighbors"] <= 60 and isinstance(hp["n_neighbors"], int)
        assert hp["weights"] in ("uniform", "distance") and hp["p"] in (1, 2)
        assert set(hp) == {"n_neighbors", "weights", "p"}
        key = json.dumps(hp, sort_keys=True)
        assert key not in seen, "a point already trained is never trained again"
        seen.add(key)
        assert record.optuna.study == f"mlci-{run.id}"
    assert records[-1].change and record.parent is not None
    study = study_of(run)
    assert len([t for t in study.trials if t.state.name == "COMPLETE"]) >= 9


def test_spaces_name_only_the_knobs_the_model_has_and_keep_types():
    baseline = {"conv_blocks": 1, "filters": 4, "epochs": 1, "learning_rate": 0.001, "gamma": "scale"}
    space = space_for(baseline, framework="keras", architecture="cnn")
    assert set(space) == {"conv_blocks", "filters", "epochs", "learning_rate"}
    assert space["filters"].low == 4 and space["filters"].high == 64  # widened to hold the user's 4
    svc = space_for({"C": 1.0, "gamma": "scale", "kernel": "rbf"}, framework="sklearn", architecture="classical")
    assert set(svc) == {"C", "kernel"}, "gamma='scale' is a string: a float range would break the model"
    mlp = space_for({"hidden_layer_sizes": [32], "alpha": 1e-4}, framework="sklearn", architecture="classical")
    assert [64] in mlp["hidden_layer_sizes"].choices and [32] in mlp["hidden_layer_sizes"].choices


@pytest.mark.parametrize("table, message", [
    ({"units": {"type": "int", "low": 64, "high": 16}},
     "mlci.toml [space]: space 'units' has low = 64 > high = 16; swap them"),
    ({"units": {"type": "integer", "low": 1, "high": 4}},
     "mlci.toml [space]: space 'units' has type 'integer'; use one of int, float, categorical"),
    ({"units": {"type": "float", "low": 0, "high": 1, "log": True}},
     "mlci.toml [space]: space 'units' is a log range with low = 0; a log range needs low > 0"),
    ({"pooling": {"type": "categorical", "choices": []}},
     "mlci.toml [space]: space 'pooling' needs a non-empty list 'choices'; e.g. choices = [\"max\", \"avg\"]"),
    ({"units": {"type": "int", "low": 1, "hihg": 4}},
     "mlci.toml [space]: space 'units' has unknown key(s) hihg; allowed: type, low, high, log, step, choices"),
])
def test_bad_space_entries_are_clear_errors(table, message):
    with pytest.raises(ConfigError) as caught:
        parse_space(table, "mlci.toml [space]")
    assert caught.value.one_line() == message


def test_bad_space_stops_mlci_run_before_training(tmp_path, home):
    model = write_model(tmp_path / "m", KNN3, "knn3.py",
                        'dataset = "digits"\n[space]\nneighbours = {type = "int", low = 1, high = 5}\n')
    done = mlci("run", str(model), "--home", str(home), "-q")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"mlci: error: {model.parent / 'mlci.toml'} [space]: space 'neighbours' is not a hyperparameter of the model; "
        "the model's HPARAMS keys are: n_neighbors, p, weights")
    [run] = RunStore(home).runs()
    assert run.trials() == []


def test_module_search_space_is_used_and_mlci_toml_overrides_it(tmp_path, home):
    source = textwrap.dedent(KNN3) + '\n\nSEARCH_SPACE = {"n_neighbors": {"type": "int", "low": 3, "high": 5}, "p": {"type": "categorical", "choices": [1]}}\n'
    model = write_model(tmp_path / "m", source, "knn3.py", '[space]\np = {type = "categorical", choices = [2]}\n')
    run, config = start(model, home)
    space = strategy_for(run, config).space
    assert (space["n_neighbors"].low, space["n_neighbors"].high) == (3, 60)  # 60: the baseline
    assert space["p"].choices == (2,)


# ----------------------------------------------------------------------------- a study across processes


KILL_AFTER_ASK = '''
import json, os, signal, sys
sys.path.insert(0, sys.argv[1])
from mlci.core.store import RunStore
from mlci.tuning.tweak import strategy_for
run = RunStore(sys.argv[2]).run(sys.argv[3])
proposal = strategy_for(run).propose()          # ask: the study holds a RUNNING trial now
print(json.dumps(proposal.hparams), flush=True)
os.kill(os.getpid(), signal.SIGKILL)            # killed before any trial folder took the proposal
'''


def test_study_survives_a_kill_between_ask_and_tell(tmp_path, home):
    model = write_model(tmp_path / "m", KNN3, "knn3.py", "threshold = 1.0\n")
    run, config = start(model, home, max_trials=10)
    drive(run, config, 2)
    killed = subprocess.run([sys.executable, "-c", KILL_AFTER_ASK, str(ROOT / "src"), str(home), run.id],
                            capture_output=True, text=True, timeout=120)
    assert killed.returncode == -9, killed.stderr
    orphan = json.loads(killed.stdout)
    study = study_of(run)
    assert study.trials[-1].state.name == "RUNNING"
    orphan_number = study.trials[-1].number

    trial = tweak(run, config)  # a fresh process's view: the same store and study
    assert trial.hparams().hparams == orphan, "the orphaned point is proposed again"
    assert trial.hparams().proposed_by == "optuna:re-proposed"
    study = study_of(run)
    assert study.trials[orphan_number].state.name == "FAIL"
    assert [t.state.name for t in study.trials].count("RUNNING") == 1  # only the new proposal
    train_here(run, trial)
    nxt = tweak(run, config)
    assert study_of(run).trials[optuna_link(trial)["trial"]].state.name == "COMPLETE"
    assert nxt.number == trial.number + 1


# ----------------------------------------------------------------------------- warm start


def test_warm_start_tries_the_previous_runs_best_first_and_keeps_its_trials(tmp_path, home):
    model = write_model(tmp_path / "m", KNN3, "knn3.py", "threshold = 1.0\n")
    first, config = start(model, home, max_trials=6)
    drive(first, config, 5)
    best_before = first.trial(first.record().best_trial).hparams().hparams
    assert best_before != first.trial(0).hparams().hparams

    model.write_text(model.read_text() + "\n# a small change: a new commit of the same model\n")
    second, config = start(model, home, max_trials=6)
    assert second.id != first.id
    train_here(second, RunOracle(second).ask().trial)
    assert second.trial(0).hparams().proposed_by == "baseline"
    trial = tweak(second, config)
    record = trial.hparams()
    assert record.proposed_by == "optuna:warm-start" and record.hparams == best_before
    assert f"best of {first.id}#{first.record().best_trial}" in record.change
    history = [t for t in study_of(second).trials if (t.user_attrs.get("mlci_key") or "").startswith(first.id)]
    assert len(history) == 6, "every finished trial of the earlier run is history for the new study"
    train_here(second, trial)
    assert second.record().best_value >= first.record().best_value - 1e-9


# ----------------------------------------------------------------------------- pruning


def test_a_hopeless_trial_is_pruned_and_the_epoch_recorded(tmp_path, home):
    model = write_model(tmp_path / "m", SGD, "sgd.py",
                        'threshold = 1.0\n[space]\nalpha = {type = "float", low = 1e-5, high = 1e-3, log = true}\n')
    run, config = start(model, home, max_trials=10)
    drive(run, config, 2)  # the baseline and two proposals complete: the pruner has something to compare with
    trial = tweak(run, config)
    record = trial.hparams()
    assert record.optuna.pruner["name"] == "median"
    # Make this proposal hopeless (a huge regularisation) while keeping its link to the study.
    record.hparams["alpha"] = 50.0
    trial.write_hparams(record)
    runner = LocalRunner()
    handle = launch_trial(run, trial, runner, config)
    state = follow(run, trial, runner, handle, config)
    assert state.status == "pruned"
    pruned = json.loads((trial.dir / "pruned.json").read_text())
    assert pruned["epoch"] == 2 and state.reason.startswith("pruned at epoch 2 (val_accuracy ")
    assert not trial.has_metrics() and "pruned at epoch 2" in trial.log_path.read_text()
    tweak(run, config)  # the next proposal tells the study what happened
    frozen = study_of(run).trials[record.optuna.trial]
    assert frozen.state.name == "PRUNED" and sorted(frozen.intermediate_values) == [1, 2]
    table = mlci("history", "--run", run.id, "--home", str(home))
    assert table.returncode == 0 and "pruned" in table.stdout
    assert len(run.trials()) == 5  # a pruned trial counts in the budget


def test_harness_trains_on_when_the_study_is_out_of_reach(tmp_path, home):
    """A container that cannot see study.db still trains the trial to the end (pruning off, one warning)."""
    model = write_model(tmp_path / "m", SGD, "sgd.py", "threshold = 1.0\n")
    run, config = start(model, home)
    drive(run, config, 0)
    trial = tweak(run, config)
    record = trial.hparams()
    record.optuna.storage = f"sqlite:///{tmp_path / 'elsewhere' / 'study.db'}"
    trial.write_hparams(record.model_copy(update={"dataset": "digits"}))
    seen = []
    metrics = train_trial(trial.dir, model, echo=seen.append)
    assert metrics is not None and metrics.epochs_done == record.hparams["epochs"]
    assert any(line.startswith("warning: pruning is off for this trial (FileNotFoundError") for line in seen)
    assert not (tmp_path / "elsewhere").exists()


# ----------------------------------------------------------------------------- the loop


# Each trial's build_model waits (up to 30 s) in a rendezvous folder until another trial is in it too: two trials
# meet there only if they train at the same time (with --parallel 1 none ever does). No clock is compared.
RENDEZVOUS = '''
    import os, pathlib, time
    ROOM = pathlib.Path({room!r})
    _build = build_model


    def build_model(hp):
        me = ROOM / str(os.getpid())
        me.touch()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (ROOM / "met").exists():
            if len(list(ROOM.glob("[0-9]*"))) >= 2:
                (ROOM / "met").touch()
            time.sleep(0.05)
        me.unlink()  # a trial that trains later, alone, finds nobody here
        return _build(hp)
'''


def test_optimize_searches_on_after_the_threshold_and_parallel_trials_share_the_study(tmp_path, home):
    room = tmp_path / "rendezvous"
    room.mkdir()
    source = KNN3 + RENDEZVOUS.format(room=str(room))
    model = write_model(tmp_path / "m", source, "knn3.py", 'threshold = 0.9\ndataset = "digits"\nseed = 3\n')
    done = mlci("run", str(model), "--home", str(home), "-q", "--optimize", "--parallel", "2", "--max-trials", "6")
    assert done.returncode == 0, done.stderr
    [run] = RunStore(home).runs()
    record = run.record()
    assert record.status == "met" and "searched on for the best (max_trials (6) reached)" in record.message
    trials = run.trials()
    assert len(trials) == 6 and all(t.has_metrics() for t in trials)
    assert trials[0].hparams().proposed_by == "baseline"
    points = [json.dumps(t.hparams().hparams, sort_keys=True) for t in trials]
    assert len(set(points)) == 6
    assert (room / "met").exists(), "no two trials trained at the same time"
    page = (run.dir / "report.html").read_text()
    assert "Parameter importances" in page and "n_neighbors" in page
    studied = study_of(run)
    for trial in trials[1:]:
        assert studied.trials[optuna_link(trial)["trial"]].state.name == "COMPLETE"
    assert not [t for t in studied.trials if t.state.name == "RUNNING"]


def test_random_strategy_searches_the_same_space(tmp_path, home):
    model = write_model(tmp_path / "m", KNN3, "knn3.py", 'threshold = 1.0\nstrategy = "random"\n')
    run, config = start(model, home, max_trials=5)
    drive(run, config, 4)
    by = [t.hparams().proposed_by for t in run.trials()]
    assert by == ["baseline"] + ["random:random"] * 4
    assert all(1 <= t.hparams().hparams["n_neighbors"] <= 60 for t in run.trials())


@pytest.mark.slow
def test_keras_trials_report_epochs_and_can_be_pruned(tmp_path, home):
    model = write_model(tmp_path / "m", KERAS_DIGITS_SOURCE, "dense.py",
                        'threshold = 1.0\n[space]\nepochs = {type = "int", low = 3, high = 3}\n')
    run, config = start(model, home, max_trials=6)
    drive(run, config, 2)
    trial = tweak(run, config)
    record = trial.hparams()
    record.hparams.update(learning_rate=10.0, units=1)  # cannot learn: accuracy stays near chance
    trial.write_hparams(record)
    metrics = train_here(run, trial)
    assert metrics is None and json.loads((trial.dir / "pruned.json").read_text())["epoch"] == 2


def test_jenkins_steps_continue_one_study_across_processes(tmp_path, home):
    """fetch → launch → wait → check → tweak …, each a fresh process, as the Jenkins jobs run them."""
    model = write_model(tmp_path / "m", KNN3, "knn3.py", 'threshold = 0.99\ndataset = "digits"\nmax_trials = 3\n')
    created = mlci("fetch", str(model.parent), "--model", model.name, "--home", str(home), check=True)
    env = {"RUN_ID": dict(line.split("=", 1) for line in created.stdout.split())["RUN_ID"]}
    for number in range(3):
        assert f"TRIAL={number}" in mlci("launch", "--home", str(home), env=env, check=True).stdout
        mlci("wait", "--home", str(home), env=env, check=True)
        assert mlci("check", "--home", str(home), env=env).returncode == 3
        tweaked = mlci("tweak", "--home", str(home), env=env)
        if number < 2:
            assert tweaked.returncode == 0 and f"TRIAL={number + 1}" in tweaked.stdout
    assert tweaked.returncode == 3 and "max_trials (3) reached" in tweaked.stdout
    run = RunStore(home).run(env["RUN_ID"])
    assert [t.hparams().proposed_by for t in run.trials()] == ["baseline", "optuna:centre", "optuna:tpe"]
    states = [t.state.name for t in study_of(run).trials]
    assert states == ["COMPLETE", "COMPLETE", "COMPLETE"], "each tweak told the study the trial before it"


def test_a_process_opens_one_storage_per_study_database_and_a_replaced_file_afresh(tmp_path):
    """Opening a storage builds an engine and checks the schema with Alembic: once per database, not per
    proposal. A study.db deleted and made again (another inode) is a new database and is opened again."""
    import optuna

    from mlci.tuning.study import open_storage

    url = f"sqlite:///{tmp_path / 'study.db'}"
    first = open_storage(url)
    assert open_storage(url) is first
    optuna.create_study(storage=first, study_name="kept")
    (tmp_path / "study.db").unlink()
    again = open_storage(url)
    assert again is not first
    assert [s.study_name for s in optuna.get_all_study_summaries(again)] == []  # the new file, not the old one
    other = open_storage(f"sqlite:///{tmp_path / 'other.db'}")
    assert other is not again and open_storage(url) is again
