"""The training harness on real data: metrics, artifacts, exact resume after SIGKILL, bad input."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import KERAS_DIGITS_SOURCE, KNN_SOURCE, mlci, write_model
from conftest import digits_trial as trial_dir
from mlci.core.errors import TrialError, UsageError
from mlci.core.store import MetricsRecord
from mlci.harness.train import train_trial


def test_sklearn_module_trains_and_writes_metrics_and_model(tmp_path):
    model = write_model(tmp_path / "m", KNN_SOURCE, "knn.py")
    folder = trial_dir(tmp_path, {"n_neighbors": 3})
    metrics = train_trial(folder, model, echo=lambda _: None)
    saved = MetricsRecord.model_validate_json((folder / "metrics.json").read_text())
    assert saved.value == metrics.value and saved.accuracy > 0.95
    assert saved.n_train == 1347 and saved.n_test == 450 and saved.framework == "sklearn"
    assert "scikit-learn" in saved.versions and (folder / "model.joblib").exists()


def test_incremental_sklearn_checkpoints_each_epoch_and_skips_a_torn_one(tmp_path):
    source = '''
        from sklearn.linear_model import SGDClassifier
        HPARAMS = {"epochs": 3, "alpha": 0.001}
        def build_model(hp):
            return SGDClassifier(alpha=hp["alpha"], random_state=0)
    '''
    model = write_model(tmp_path / "m", source, "sgd.py")
    folder = trial_dir(tmp_path)
    first = train_trial(folder, model, echo=lambda _: None)
    assert first.epochs_done == 3 and len(first.history["val_accuracy"]) == 3
    checkpoints = sorted(p.name for p in (folder / "checkpoints" / "sklearn").iterdir())
    assert checkpoints == ["epoch-2.joblib", "epoch-3.joblib"]
    (folder / "checkpoints" / "sklearn" / "epoch-3.joblib").write_bytes(b"\x80\x04truncated")
    seen = []
    again = train_trial(folder, model, echo=seen.append)
    assert any("epoch-3.joblib is unreadable" in line for line in seen)
    assert any("resuming from the checkpoint after epoch 2" in line for line in seen)
    assert again.resumed_from_epoch == 2 and again.value == pytest.approx(first.value)


def test_incremental_sklearn_resumes_at_the_next_epoch_with_the_same_history(tmp_path):
    """A trial killed after epoch 3 of 4 (its last checkpoint gone with it) resumes at epoch 3 exactly: four
    epochs in all, and the per-epoch history equals an uninterrupted run's (each epoch's shuffle is seeded)."""
    source = '''
        from sklearn.linear_model import SGDClassifier
        HPARAMS = {"epochs": 4, "alpha": 0.01}
        def build_model(hp):
            return SGDClassifier(alpha=hp["alpha"], random_state=0)
    '''
    model = write_model(tmp_path / "m", source, "sgd.py")
    whole = train_trial(trial_dir(tmp_path, name="whole"), model, echo=lambda _: None)
    folder = trial_dir(tmp_path, name="killed")
    train_trial(folder, model, echo=lambda _: None)
    (folder / "checkpoints" / "sklearn" / "epoch-4.joblib").unlink()
    (folder / "metrics.json").unlink()
    resumed = train_trial(folder, model, echo=lambda _: None)
    assert resumed.resumed_from_epoch == 3 and resumed.epochs_done == 4 == whole.epochs_done
    assert resumed.history["val_accuracy"] == pytest.approx(whole.history["val_accuracy"])
    assert len(set(whole.history["val_accuracy"])) > 1  # the epochs differ, so an epoch skipped or repeated shows
    assert resumed.value == pytest.approx(whole.value)


@pytest.mark.slow
def test_keras_module_trains_on_digits(tmp_path):
    model = write_model(tmp_path / "m", KERAS_DIGITS_SOURCE, "dense.py")
    folder = trial_dir(tmp_path, {"epochs": 2})
    metrics = train_trial(folder, model, echo=lambda _: None)
    assert metrics.framework == "keras" and metrics.epochs_done == 2
    assert len(metrics.history["val_accuracy"]) == 2 and 0.1 < metrics.accuracy <= 1
    assert (folder / "model.keras").exists()
    assert not (folder / "checkpoints" / "keras").exists()  # BackupAndRestore removes its folder at the end


def _start_harness(folder, model):
    return subprocess.Popen([sys.executable, "-m", "mlci", "train", "--trial-dir", str(folder), "--model", str(model)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _epoch(folder):
    try:
        return json.loads((folder / "heartbeat").read_text()).get("epoch", 0)
    except (OSError, ValueError):
        return 0


@pytest.mark.slow
def test_sigkill_during_epoch_2_resumes_there_and_matches_an_uninterrupted_run(tmp_path):
    model = write_model(tmp_path / "m", KERAS_DIGITS_SOURCE.replace('"epochs": 3', '"epochs": 6'), "dense.py")
    straight = trial_dir(tmp_path, name="straight", seed=7)
    assert mlci("train", "--trial-dir", str(straight), "--model", str(model)).returncode == 0
    killed = trial_dir(tmp_path, name="killed", seed=7)
    process = _start_harness(killed, model)
    deadline = time.monotonic() + 120
    while _epoch(killed) < 1 and time.monotonic() < deadline:  # epoch 1 done: now inside epoch 2
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    assert not (killed / "metrics.json").exists()
    done = mlci("train", "--trial-dir", str(killed), "--model", str(model))
    assert done.returncode == 0, done.stderr
    resumed = MetricsRecord.model_validate_json((killed / "metrics.json").read_text())
    reference = MetricsRecord.model_validate_json((straight / "metrics.json").read_text())
    assert resumed.resumed_from_epoch is not None and resumed.resumed_from_epoch >= 1
    assert "resuming from the checkpoint after epoch" in done.stdout
    assert resumed.epochs_done == 6 == reference.epochs_done
    assert resumed.accuracy == reference.accuracy
    assert resumed.history["val_accuracy"] == pytest.approx(reference.history["val_accuracy"], abs=1e-6)


def test_missing_build_model_is_a_clear_error(tmp_path):
    model = write_model(tmp_path / "m", "build_model = None\n", "empty.py")
    with pytest.raises(TrialError, match=r"empty.py: no build_model\(hp\) function; define build_model"):
        train_trial(trial_dir(tmp_path), model, echo=lambda _: None)


def test_build_model_raising_names_file_and_line(tmp_path):
    source = '''
        HPARAMS = {"n_neighbors": 3}
        def build_model(hp):
            raise ValueError("no such layer")
    '''
    model = write_model(tmp_path / "m", source, "broken.py")
    with pytest.raises(TrialError) as info:
        train_trial(trial_dir(tmp_path), model, echo=lambda _: None)
    assert info.value.one_line().startswith(f"{model.name}:3: build_model raised ValueError: no such layer; fix build_model")


def test_hparam_of_the_wrong_type_names_the_file_and_key(tmp_path):
    model = write_model(tmp_path / "m", KNN_SOURCE, "knn.py")
    folder = trial_dir(tmp_path, {"n_neighbors": "five"})
    with pytest.raises(UsageError) as info:
        train_trial(folder, model, echo=lambda _: None)
    message = info.value.one_line()
    assert f"{folder / 'hparams.json'}: hparam 'n_neighbors' = 'five' has the wrong type; expected int" in message


def test_missing_model_file(tmp_path):
    with pytest.raises(UsageError, match=r"nope.py: model file not found"):
        train_trial(trial_dir(tmp_path), tmp_path / "nope.py", echo=lambda _: None)


def test_harness_cli_writes_error_and_exit_code_files(tmp_path):
    model = write_model(tmp_path / "m", "build_model = None\n", "empty.py")
    folder = trial_dir(tmp_path)
    done = mlci("train", "--trial-dir", str(folder), "--model", str(model))
    assert done.returncode == 5
    assert done.stderr.strip().splitlines()[-1].startswith("mlci: error: ")
    assert "no build_model(hp) function" in (folder / "error.txt").read_text()
    assert (folder / "exit_code").read_text().strip() == "5"


def test_the_spec_alone_sets_metric_dataset_and_seed(tmp_path, monkeypatch):
    """hparams.json is the one channel: no argv option, no MLCI_METRIC, no mlci.toml next to the model."""
    import mlci.harness.train as harness

    for name in ("MLCI_METRIC", "MLCI_SERVE_KERAS_MNIST", "MLCI_ACCURACY_FILES"):
        monkeypatch.delenv(name, raising=False)
    model = write_model(tmp_path / "m", KNN_SOURCE, "knn.py")
    (tmp_path / "m" / "mlci.toml").write_text('metric = "loss"\ndataset = "mnist-sample"\nseed = 1\n')
    folder = trial_dir(tmp_path, {"n_neighbors": 3}, metric="f1", dataset="digits", seed=3)
    asked = []
    real = harness.load_dataset
    monkeypatch.setattr(harness, "load_dataset", lambda name, seed: asked.append((name, seed)) or real(name, seed))
    metrics = train_trial(folder, model, echo=lambda _: None)
    assert asked == [("digits", 3)]
    assert metrics.metric == "f1" and metrics.n_train + metrics.n_test == 1797  # digits, not the MNIST sample
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLCI_")}
    done = subprocess.run([sys.executable, "-m", "mlci", "train", "--trial-dir", str(folder), "--model", str(model)],
                          env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    saved = MetricsRecord.model_validate_json((folder / "metrics.json").read_text())
    assert saved.metric == "f1" and saved.value == pytest.approx(metrics.value)


@pytest.mark.parametrize("key, value, expected", [
    ("metric", "f2", "key 'metric' is invalid (value error, one of accuracy, f1, loss, val_accuracy, got 'f2')"),
    ("dataset", "cifar", "key 'dataset' is invalid (input should be 'mnist-sample', 'digits', 'mnist' or 'module'"),
    ("seed", -1, "key 'seed' is invalid (input should be greater than or equal to 0, got -1)"),
    ("metrc", "loss", "key 'metrc' is invalid (extra inputs are not permitted, got 'loss')"),
])
def test_an_invalid_or_unknown_spec_value_is_one_line(tmp_path, key, value, expected):
    model = write_model(tmp_path / "m", KNN_SOURCE, "knn.py")
    folder = tmp_path / "t"
    folder.mkdir()
    (folder / "hparams.json").write_text(json.dumps({"trial": 0, "hparams": {}, key: value}))
    done = mlci("train", "--trial-dir", str(folder), "--model", str(model))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"mlci: error: {folder / 'hparams.json'}: hparams.json ")
    assert expected in lines[0]


def test_a_spec_written_before_the_run_settings_existed_still_reads(tmp_path):
    from mlci.core.store import TrialSpec, read_record

    old = {"schema_version": 1, "trial": 2, "hparams": {"units": 8}, "proposed_by": "optuna:tpe", "parent": 0,
           "change": "units 4 -> 8", "created_at": "2024-01-01T00:00:00+00:00",
           "optuna": {"storage": "sqlite:///x.db", "study": "mlci-r", "trial": 1, "trial_id": 2,
                      "direction": "maximize", "report": "val_accuracy", "pruner": {"name": "median"}}}
    (tmp_path / "hparams.json").write_text(json.dumps(old))
    spec = read_record(tmp_path / "hparams.json", TrialSpec, what="hparams.json", fix="-")
    assert (spec.metric, spec.dataset, spec.seed, spec.data.accuracy_files) == ("accuracy", None, 0, [])
    assert spec.optuna.trial_id == 2 and spec.optuna_link() == old["optuna"]
    assert json.loads(spec.model_dump_json())["optuna"] == old["optuna"]  # same JSON key as before
