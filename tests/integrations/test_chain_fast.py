"""The rendered Jenkins chain run end to end in the fast tier: one small scikit-learn trial that meets its threshold.

BuildRunner (tests/jenkins_standin.py) stands in for Jenkins, which cannot be downloaded here: it runs the rendered
XML's shell steps with Jenkins' environment and follows the parameterized triggers; git, the scripts and mlci are real.
The slow tests in test_jenkins.py run the loop (retrain) and the monitor's trigger.
"""
from __future__ import annotations

import json

from jenkins_standin import logs_of, model_repo
from mlci.core.store import RunStore

KNN = '''"""A small scikit-learn model module: k nearest neighbours on the 8x8 digits (about 0.98 accuracy)."""
from sklearn.neighbors import KNeighborsClassifier

HPARAMS = {"n_neighbors": 3}


def build_model(hp):
    return KNeighborsClassifier(n_neighbors=hp["n_neighbors"])
'''


def test_a_push_runs_fetch_launch_train_check_notify_once_and_the_run_is_met(tmp_path, build_runner):
    sha = model_repo(tmp_path / "models", KNN, 'dataset = "digits"\nrunner = "local"\nthreshold = 0.9\nmax_trials = 3\n')
    builds = build_runner().run("mlci-1-fetch")
    logs = logs_of(builds)
    assert [(b.job, b.result) for b in builds] == [
        ("mlci-1-fetch", "SUCCESS"), ("mlci-2-launch", "SUCCESS"), ("mlci-3-train", "SUCCESS"),
        ("mlci-4-check", "SUCCESS"), ("mlci-5-notify", "SUCCESS")], logs
    run_id = builds[1].params["RUN_ID"]
    assert all(b.params["RUN_ID"] == run_id and b.params["COMMIT"] == sha for b in builds[1:]), logs
    run = RunStore(tmp_path / "mlci-home").run(run_id)
    record = run.record()
    assert (record.commit, record.status, record.reason, record.best_trial) == (sha, "met", "met", 0), logs
    assert record.message.startswith("trial 0 reached accuracy 0.9") and record.message.endswith("≥ 0.9")
    assert (run.best_dir / "model.joblib").exists() and run.trial_numbers() == [0]
    events = [json.loads(p.read_text()).get("event") for p in run.outbox.rglob("*.json")]
    assert events.count("success") == 1, logs
