"""Warm workers on real processes: a forked trial equals a fresh process's, survives kills, and its leaks end it.

The scikit-learn model draws from numpy's and Python's global random streams (random_state=None, a random
hidden choice), so a worker that leaked a stream from one trial into the next would train differently.
"""
from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import joblib
import numpy as np
import pytest

from conftest import KERAS_DIGITS_SOURCE, write_model
from mlci.core.errors import RunnerError
from mlci.core.store import HparamsRecord, RunStore, write_json
from mlci.orchestration.lifecycle import epochs_logged, follow, launch_trial
from mlci.orchestration.pipeline import run_pipeline
from mlci.orchestration.runs import prepare_run
from mlci.runners import LaunchSpec, LocalRunner, get_runner
from mlci.runners.warm import WarmRunner
from mlci.runners.warm_worker import library_imports

SGD_SOURCE = '''
    """An SGD classifier that draws from the global random streams and can be slowed or made to leak."""
    import os
    import random
    import time

    import numpy as np
    from sklearn.linear_model import SGDClassifier

    HPARAMS = {"alpha": 0.0001, "epochs": 6, "epoch_seconds": 0.0, "leak_mb": 0, "leak_marker": ""}


    def build_model(hp):
        if hp["leak_mb"] and not os.path.exists(hp["leak_marker"]):
            open(hp["leak_marker"], "w").close()  # leaks on the first attempt only
            hoard = np.ones(hp["leak_mb"] * 2**20, dtype=np.uint8)  # touched: resident
            time.sleep(20)  # the worker ends this process long before
            del hoard
        kind = SGDClassifier
        if hp["epoch_seconds"]:
            from pacing import Paced as kind  # beside the model: its checkpoints unpickle in a new process
        model = kind(alpha=hp["alpha"] * random.choice([1, 2]), random_state=None, shuffle=True,
                     eta0=float(np.random.uniform(0.01, 0.1)), learning_rate="constant")
        model.epoch_seconds_ = hp["epoch_seconds"]
        return model
'''


PACING_SOURCE = '''
    """Epochs slow enough to kill a trial between them."""
    import time

    from sklearn.linear_model import SGDClassifier


    class Paced(SGDClassifier):
        def partial_fit(self, X, y, classes=None, sample_weight=None):
            time.sleep(self.epoch_seconds_)
            return super().partial_fit(X, y, classes=classes, sample_weight=sample_weight)
'''


def sgd_model(folder: Path, config: str | None = None, source: str = SGD_SOURCE) -> Path:
    write_model(folder, PACING_SOURCE, "pacing.py")
    return write_model(folder, source, "sgd.py", config)


@pytest.fixture
def warm():
    runner = WarmRunner()
    yield runner
    runner.close()


def spec(model: Path, folder: Path, framework: str, seed: int = 0, **hparams) -> LaunchSpec:
    write_json(folder / "hparams.json", HparamsRecord(trial=0, hparams=hparams, dataset="digits", seed=seed))
    return LaunchSpec(run_id="test-warm", trial=0, model_name=model.stem, model_file=model, source_dir=model.parent,
                      trial_dir=folder, framework=framework)


def finished(runner, launch: LaunchSpec):
    handle = runner.start(launch)
    runner.wait(handle, timeout=300)
    return runner.status_for(handle, launch.trial_dir)


def trained(runner, launch: LaunchSpec) -> dict:
    status = finished(runner, launch)
    assert status.succeeded, (status, (launch.trial_dir / "log.txt").read_text())
    return json.loads((launch.trial_dir / "metrics.json").read_text())


def test_a_warm_trial_equals_a_fresh_process_with_the_same_seed(tmp_path, warm):
    model = sgd_model(tmp_path / "m")
    fresh = trained(LocalRunner(), spec(model, tmp_path / "fresh", "sklearn", seed=3))
    trained(warm, spec(model, tmp_path / "other", "sklearn", seed=11, alpha=0.01))  # the worker's first trial
    again = trained(warm, spec(model, tmp_path / "warm", "sklearn", seed=3))
    assert again["value"] == fresh["value"] and again["history"] == fresh["history"]
    ours, theirs = joblib.load(tmp_path / "warm" / "model.joblib"), joblib.load(tmp_path / "fresh" / "model.joblib")
    assert np.array_equal(ours.coef_, theirs.coef_) and ours.eta0 == theirs.eta0 and ours.alpha == theirs.alpha
    other = joblib.load(tmp_path / "other" / "model.joblib")
    assert not np.array_equal(other.coef_, ours.coef_)  # the comparison can tell trials apart
    assert warm.workers["sklearn"].process.poll() is None  # one worker served both trials


@pytest.mark.slow
def test_a_warm_keras_trial_equals_a_fresh_process_metric_and_weights(tmp_path, warm):
    import keras

    model = write_model(tmp_path / "m", KERAS_DIGITS_SOURCE, "dense.py")
    fresh = trained(LocalRunner(), spec(model, tmp_path / "fresh", "keras", seed=5))
    trained(warm, spec(model, tmp_path / "other", "keras", seed=1, units=16))
    again = trained(warm, spec(model, tmp_path / "warm", "keras", seed=5))
    assert again["value"] == fresh["value"] and again["history"] == fresh["history"]
    ours = keras.saving.load_model(tmp_path / "warm" / "model.keras").get_weights()
    theirs = keras.saving.load_model(tmp_path / "fresh" / "model.keras").get_weights()
    assert len(ours) == len(theirs) and all(np.array_equal(a, b) for a, b in zip(ours, theirs))


def _wait(condition, what: str, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_trial_process_killed_mid_trial_is_replaced_and_resumes_from_its_checkpoint(tmp_path, home, warm):
    model = sgd_model(tmp_path / "m", 'dataset = "digits"\nmax_restarts = 2\n'
                                                             '[monitor]\nbackoff = 0.0\n')
    run, config = prepare_run(model, store=RunStore(home))
    trial = run.new_trial()
    trial.write_hparams(HparamsRecord(trial=0, hparams={"epochs": 8, "epoch_seconds": 0.4}))
    handle = launch_trial(run, trial, warm, config)
    worker = warm.workers["sklearn"].pid
    _wait(lambda: epochs_logged(trial) >= 3, "epoch 3")
    os.kill(int(handle), signal.SIGKILL)
    state = follow(run, trial, warm, handle, config)
    assert state.status == "succeeded", state.reason
    assert len(state.restarts) == 1 and state.restarts[0].resumed_from_epoch >= 3
    assert state.pid != int(handle) and "resuming from the checkpoint after epoch" in trial.log_path.read_text()
    assert trial.metrics().epochs_done == 8
    assert warm.workers["sklearn"].pid == worker  # the trial's process died, not the worker that forks them


def test_a_dead_worker_is_replaced_and_its_running_trial_goes_on(tmp_path, home, warm):
    model = sgd_model(tmp_path / "m", 'dataset = "digits"\n')
    run, config = prepare_run(model, store=RunStore(home))
    first = run.new_trial()
    first.write_hparams(HparamsRecord(trial=0, hparams={"epochs": 4, "epoch_seconds": 0.3}))
    handle = launch_trial(run, first, warm, config)
    dead = warm.workers["sklearn"].pid
    os.kill(dead, signal.SIGKILL)
    second = run.new_trial()
    second.write_hparams(HparamsRecord(trial=1, hparams={"epochs": 1}))
    other = launch_trial(run, second, warm, config)
    assert warm.workers["sklearn"].pid != dead
    assert follow(run, first, warm, handle, config).status == "succeeded"  # its own session: not killed with it
    assert follow(run, second, warm, other, config).status == "succeeded"


def test_a_trial_leaking_past_the_memory_limit_ends_its_process_and_the_trial_is_not_lost(tmp_path, home):
    marker = tmp_path / "leaked"
    model = sgd_model(tmp_path / "m", source=SGD_SOURCE.replace('"leak_mb": 0, "leak_marker": ""',
                                                                f'"leak_mb": 800, "leak_marker": "{marker}"'),
                      config='dataset = "digits"\nthreshold = 0.1\nmax_trials = 1\nmax_restarts = 2\nstrategy = "ladder"\n'
                        '[resources]\nmemory = "600m"\n[monitor]\nbackoff = 0.0\n')
    result = run_pipeline(model, store=RunStore(home), notify_outcome=False)
    state = result.run.trial(0).state()
    assert marker.exists() and state.status == "succeeded" and state.runner == "warm"
    assert len(state.restarts) == 1
    assert state.restarts[0].reason == "OOM-killed" and state.restarts[0].exit_code == 137
    log = result.run.trial(0).log_path.read_text()
    assert "mlci warm worker: trial process grew to " in log and "past the limit of 600 MiB" in log


def test_workers_fresh_starts_a_process_per_trial(knn_model, home):
    assert type(get_runner("local", workers="fresh")) is LocalRunner
    assert type(get_runner("local", workers="warm")) is WarmRunner and get_runner("warm").name == "warm"
    result = run_pipeline(knn_model, store=RunStore(home), overrides={"workers": "fresh", "max_trials": 1},
                          notify_outcome=False)
    assert result.run.trial(0).state().runner == "local"


def test_parallel_slots_share_one_worker_and_every_trial_ends(tmp_path, home):
    model = sgd_model(tmp_path / "m", 'dataset = "digits"\nthreshold = 1.0\nmax_trials = 4\nparallel = 2\n'
                                      'strategy = "random"\n')
    result = run_pipeline(model, store=RunStore(home), notify_outcome=False)
    states = [trial.state() for trial in result.run.trials()]
    assert len(states) == 4 and all(s.status == "succeeded" and s.runner == "warm" for s in states)
    assert len({s.pid for s in states}) == 4  # a process per trial


def test_a_warm_up_imports_in_the_background_and_its_worker_serves_the_first_trial(tmp_path, warm):
    model = sgd_model(tmp_path / "m")
    warm.warm_up("sklearn")  # returns before the worker has imported anything
    worker = warm.workers["sklearn"]
    assert worker.process.poll() is None
    trained(warm, spec(model, tmp_path / "first", "sklearn", seed=3))
    assert warm.workers["sklearn"] is worker and worker.pid == worker.process.pid and worker.import_seconds > 0
    warm.close()
    assert worker.process.returncode == 0  # stdin's end: it ends at once, skipping the interpreter's teardown


def test_a_worker_imports_the_libraries_its_model_names_never_the_users_own_modules(tmp_path, warm):
    source = ("import numpy as np\nfrom sklearn import neighbors\nfrom sklearn.linear_model import SGDClassifier\n"
              "import pacing\nfrom . import sibling\nfrom pacing import Paced\n"
              "def build_model(hp):\n    from sklearn.ensemble import RandomForestClassifier\n")
    assert library_imports(source) == ["numpy", "sklearn", "sklearn.neighbors", "sklearn.linear_model",
                                       "sklearn.linear_model.SGDClassifier", "sklearn.ensemble",
                                       "sklearn.ensemble.RandomForestClassifier"]
    assert library_imports("def broken(:\n") == []
    model = sgd_model(tmp_path / "m")  # imports sklearn.linear_model at the top, pacing (its own) in build_model
    warm.warm_up("sklearn", model)
    cmdline = Path(f"/proc/{warm.workers['sklearn'].process.pid}/cmdline")
    _wait(lambda: b"mlci.runners.warm_worker" in cmdline.read_bytes(), "the worker's exec")  # empty mid-exec
    command = cmdline.read_bytes().split(b"\0")
    assert b"sklearn.linear_model" in command and b"pacing" not in command
    trained(warm, spec(model, tmp_path / "first", "sklearn"))  # and it trains as before


def test_closing_a_runner_whose_warm_up_no_trial_used_ends_the_importing_worker():
    runner = WarmRunner()
    runner.warm_up("keras")  # importing TensorFlow takes seconds: close() does not wait for it
    process = runner.workers["keras"].process
    runner.close()
    assert process.poll() is not None


def test_a_warm_up_that_cannot_start_is_reported_by_the_first_trial_once(tmp_path, warm, monkeypatch):
    model = sgd_model(tmp_path / "m")
    monkeypatch.setattr("sys.executable", "/bin/false")  # a worker that ends at once, before it is ready
    warm.warm_up("sklearn")
    worker = warm.workers["sklearn"]
    worker.process.wait()
    with pytest.raises(RunnerError) as caught:
        warm.start(spec(model, tmp_path / "first", "sklearn"))
    assert "the warm sklearn worker did not start" in caught.value.message
    assert 'workers = "fresh"' in caught.value.hint
    assert warm.workers["sklearn"] is worker  # its own failure, not a second worker's
