"""The embedded pipeline end to end (`mlci run`), with real training, and each step's command."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import mlci, write_model
from mlci.orchestration.oracle import Action, RunOracle
from mlci.orchestration.steps import check_trial as check
from mlci.core.errors import MetricsError
from mlci.orchestration.pipeline import run_pipeline
from mlci.core.store import RunStore


def test_sklearn_run_tweaks_until_the_threshold(knn_model, home):
    done = mlci("run", str(knn_model), "--home", str(home), "-q")
    assert done.returncode == 0, done.stderr
    store = RunStore(home)
    [run] = store.runs()
    record = run.record()
    assert record.status == "met" and record.kind.framework == "sklearn"
    trials = run.trials()
    assert len(trials) >= 2, "the example must start below its threshold"
    assert trials[0].hparams().proposed_by == "baseline" and trials[0].hparams().hparams == {"n_neighbors": 60, "weights": "uniform"}
    assert trials[0].metrics().value < 0.97 <= record.best_value
    assert trials[1].hparams().proposed_by.startswith("ladder:")
    best = json.loads((run.best_dir / "best.json").read_text())["trial"]
    assert best == record.best_trial and (run.best_dir / "model.joblib").exists()
    assert (run.dir / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "reached the threshold" in (run.dir / "report.html").read_text()
    assert list(run.outbox.glob("success*.json"))
    assert "threshold met" in done.stdout


def test_mlci_run_leaves_no_import_thread_and_no_worker_behind(knn_model, home):
    """The background imports (Optuna, matplotlib) and the warm worker started before the first trial end with
    the run, also when the run has nothing left to train."""
    import threading

    def warm_workers() -> list[str]:
        found = []
        for entry in Path("/proc").iterdir():
            try:
                stat, command = (entry / "stat").read_text(), (entry / "cmdline").read_bytes()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) == os.getpid() and fields[0] != "Z" and b"mlci.runners.warm_worker" in command:
                found.append(entry.name)
        return found

    for _ in range(2):  # the second run finds the run finished: nothing trains
        result = run_pipeline(knn_model, store=RunStore(home), overrides={"max_trials": 1}, notify_outcome=False)
        assert not [t for t in threading.enumerate() if t.name == "mlci-import-ahead"]
        assert warm_workers() == []
    assert len(result.run.trials()) == 1 and result.run.trial(0).state().runner == "warm"


def test_rerunning_continues_the_same_run(knn_model, home):
    first = mlci("run", str(knn_model), "--home", str(home), "-q", "--max-trials", "2", "--threshold", "0.999")
    assert first.returncode == 3
    [run] = RunStore(home).runs()
    assert len(run.trials()) == 2 and run.record().status == "exhausted"
    again = mlci("run", str(knn_model), "--home", str(home), "-q", "--max-trials", "3", "--threshold", "0.999")
    assert again.returncode == 3
    assert [r.id for r in RunStore(home).runs()] == [run.id]
    assert len(run.trials()) == 3  # one more trial, none repeated


def test_budget_spent_below_threshold_exits_3(knn_model, home):
    done = mlci("run", str(knn_model), "--home", str(home), "-q", "--threshold", "1.0", "--max-trials", "3")
    assert done.returncode == 3
    [run] = RunStore(home).runs()
    assert run.record().status == "exhausted" and len(run.trials()) == 3
    assert "budget spent below the threshold" in done.stdout
    assert list(run.outbox.glob("budget-exhausted*.json"))


def test_ladder_changes_one_thing_at_a_time_and_keeps_only_improvements(knn_model, home):
    run_pipeline(knn_model, store=RunStore(home), overrides={"threshold": 1.0, "max_trials": 5})
    [run] = RunStore(home).runs()
    trials = run.trials()
    for trial in trials[1:]:
        record = trial.hparams()
        parent = run.trial(record.parent).hparams().hparams
        changed = [k for k in record.hparams if record.hparams[k] != parent.get(k)]
        assert len(changed) == 1, (trial.number, changed)
        # the parent is always the best trial measured before this one
        earlier = [t for t in trials if t.number < trial.number]
        assert record.parent == max(earlier, key=lambda t: t.metrics().value).number


def test_model_failing_in_build_model_fails_the_run_with_exit_5(tmp_path, home):
    source = '''
        from sklearn.neighbors import KNeighborsClassifier
        HPARAMS = {"n_neighbors": 3}
        def build_model(hp):
            raise RuntimeError("GPU not found")
    '''
    model = write_model(tmp_path / "m", source, "broken.py", 'dataset = "digits"\n')
    done = mlci("run", str(model), "--home", str(home), "-q")
    assert done.returncode == 5
    error = done.stderr.strip().splitlines()[-1]
    assert error.startswith("mlci: error: trial 0 failed: ") and "build_model raised RuntimeError: GPU not found" in error
    [run] = RunStore(home).runs()
    assert run.record().status == "failed" and "GPU not found" in run.record().message
    assert run.trial(0).state().status == "failed"
    # the same event the Jenkins path announces for this run (job 5 reads the oracle's reason)
    assert run.record().reason == "trial-failed"
    assert [p.name for p in run.outbox.glob("*.json")] == ["trial-failed-0.json"]


def test_missing_model_file_exit_2(home, tmp_path):
    done = mlci("run", str(tmp_path / "nothing.py"), "--home", str(home))
    assert done.returncode == 2
    assert done.stderr.strip() == f"mlci: error: {tmp_path / 'nothing.py'}: model file not found; pass the path of your model's .py file"


def test_file_without_build_model_fails_clearly(tmp_path, home):
    model = write_model(tmp_path / "m", "from sklearn.svm import SVC\nHPARAMS = {}\nclf = SVC()\n", "plain.py",
                        'dataset = "digits"\n')
    done = mlci("run", str(model), "--home", str(home), "-q")
    assert done.returncode in (5, 6)
    assert "mlci: error:" in done.stderr


def test_step_commands_drive_the_same_run(knn_model, home):
    """launch → wait → check → tweak → launch …, each in its own process, as the Jenkins jobs run them."""
    created = mlci("fetch", str(knn_model.parent), "--model", knn_model.name, "--home", str(home), check=True)
    facts = dict(line.split("=", 1) for line in created.stdout.split())
    run_id = facts["RUN_ID"]
    env = {"RUN_ID": run_id}
    for expected_trial in range(3):
        launched = mlci("launch", "--home", str(home), env=env, check=True)
        assert f"TRIAL={expected_trial}" in launched.stdout
        mlci("wait", "--home", str(home), env=env, check=True)
        checked = mlci("check", "--home", str(home), env=env)
        if checked.returncode == 0:
            break
        assert checked.returncode == 3 and "below the threshold" in checked.stdout
        tweaked = mlci("tweak", "--home", str(home), env=env, check=True)
        assert f"TRIAL={expected_trial + 1}" in tweaked.stdout
    status = json.loads(mlci("status", "--run", run_id, "--json", "--home", str(home), check=True).stdout)
    assert status["run_id"] == run_id and status["trials_done"] >= 2
    assert status["best_value"] is not None


def test_fetch_snapshots_a_git_commit(tmp_path, home, knn_model):
    repo = knn_model.parent
    git = lambda *a: subprocess.run(["git", *a], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()
    git("init", "-q")
    git("-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qam", "x", "--allow-empty")
    git("add", ".")
    git("-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "model")
    sha = git("rev-parse", "HEAD")
    (repo / knn_model.name).write_text("# changed after the commit\n")
    done = mlci("fetch", str(repo), "--model", knn_model.name, "--home", str(home), check=True)
    facts = dict(line.split("=", 1) for line in done.stdout.split())
    assert facts["COMMIT"] == sha
    snapshot = home / "src" / sha / knn_model.name
    assert facts["MODEL"] == str(snapshot) and "KNeighborsClassifier" in snapshot.read_text()
    run = RunStore(home).run(facts["RUN_ID"])
    assert run.record().commit == sha


def test_check_exit_codes_and_corrupt_metrics(knn_model, home):
    run_pipeline(knn_model, store=RunStore(home), overrides={"threshold": 0.5, "max_trials": 1})
    [run] = RunStore(home).runs()
    assert check(run).met
    assert mlci("check", "--run", run.id, "--home", str(home)).returncode == 0
    run.trial(0).metrics_path.write_text('{"schema_version": 1, "value": 0.9')  # truncated
    done = mlci("check", "--run", run.id, "--home", str(home))
    assert done.returncode == 6
    assert "metrics.json: metrics.json is not valid JSON" in done.stderr and "truncated?" in done.stderr
    with pytest.raises(MetricsError):
        check(run)
    assert mlci("history", "--run", run.id, "--home", str(home)).returncode == 0  # the store stays readable


def test_tweak_is_idempotent_and_respects_the_budget(knn_model, home):
    run_pipeline(knn_model, store=RunStore(home), overrides={"threshold": 1.0, "max_trials": 2})
    [run] = RunStore(home).runs()
    assert RunOracle(run).budget()[0] is not None
    assert RunOracle(run).next().action is Action.DONE
    done = mlci("tweak", "--run", run.id, "--home", str(home))
    assert done.returncode == 3 and "max_trials (2) reached" in done.stdout


def test_hparams_of_the_wrong_type_fail_the_trial_clearly(knn_model, home):
    created = mlci("fetch", str(knn_model.parent), "--model", knn_model.name, "--home", str(home), check=True)
    run_id = dict(line.split("=", 1) for line in created.stdout.split())["RUN_ID"]
    run = RunStore(home).run(run_id)
    trial = run.new_trial()
    (trial.hparams_path).write_text('{"schema_version": 1, "trial": 0, "hparams": {"n_neighbors": "5"}}')
    mlci("launch", "--run", run_id, "--home", str(home), check=True)
    done = mlci("wait", "--run", run_id, "--home", str(home))
    assert done.returncode == 5
    assert "hparam 'n_neighbors' = '5' has the wrong type; expected int" in done.stderr
    assert run.trial(0).state().status == "failed"


@pytest.mark.slow
def test_keras_run_end_to_end(keras_model, home):
    done = mlci("run", str(keras_model), "--home", str(home), "-q", "--threshold", "0.93")
    [run] = RunStore(home).runs()
    record = run.record()
    assert record.kind.framework == "keras"
    assert done.returncode == (0 if record.status == "met" else 3), done.stderr
    first = run.trial(0).metrics()
    assert first.framework == "keras" and first.epochs_done == 3 and len(first.history["val_accuracy"]) == 3
    assert len(run.trials()) >= 2 and run.trial(1).hparams().change
    assert (run.best_dir / "model.keras").exists()


@pytest.mark.slow
def test_killing_mlci_run_and_running_again_loses_no_trial(keras_model, home):
    """SIGKILL the orchestrator mid-trial: the next `mlci run` resumes, no trial lost or duplicated."""
    args = [sys.executable, "-m", "mlci", "run", str(keras_model), "--home", str(home), "-q", "--threshold", "1.0",
            "--max-trials", "2"]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    beat = None
    while time.monotonic() < deadline:
        beat = next(iter(home.glob("runs/*/trials/0/heartbeat")), None)
        if beat is not None:
            break
        time.sleep(0.1)
    assert beat is not None
    os.kill(process.pid, signal.SIGKILL)  # only the orchestrator: its trial process lives on
    process.wait()
    done = mlci("run", str(keras_model), "--home", str(home), "-q", "--threshold", "1.0", "--max-trials", "2")
    assert done.returncode == 3, done.stderr
    [run] = RunStore(home).runs()
    assert [t.number for t in run.trials()] == [0, 1]
    assert all(t.has_metrics() for t in run.trials())
    assert run.trial(0).hparams().proposed_by == "baseline"


def test_parallel_run_is_that_many_workers_of_the_farm_loop(knn_model, home):
    """`mlci run --parallel 2` runs two workers of `mlci worker`'s loop: each trial is claimed once, by one of them."""
    result = run_pipeline(knn_model, store=RunStore(home), notify_outcome=False,
                          overrides={"parallel": 2, "max_trials": 4, "threshold": 1.0, "strategy": "random"})
    assert result.exit_code == 3 and len(result.run.trials()) == 4
    claims = RunOracle(result.run).coordination.claims()
    assert sorted(c.trial for c in claims) == [0, 1, 2, 3]
    assert all(c.done and c.takeovers == 0 for c in claims)
    assert len({c.worker for c in claims}) == 2
