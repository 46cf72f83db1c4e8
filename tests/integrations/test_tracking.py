"""MLflow tracking against a real MLflow tracking server on loopback (SQLite for MLflow's own store),
read back with MLflow's own client; and a server that cannot be reached never fails a trial."""
from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import KERAS_DIGITS_SOURCE, KNN_SOURCE, free_port, mlci, write_model
from skips import require_module
from mlci.core.store import RunStore
from mlci.integrations.reports.rows import epoch_curves



def tracked(uri: str, max_trials: int = 2) -> str:
    return (f'threshold = 0.999\nmax_trials = {max_trials}\ndataset = "digits"\nrunner = "local"\n'
            f'strategy = "optuna"\n\n[tracking]\nmlflow_uri = "{uri}"\n')


@pytest.fixture
def mlflow_client():
    require_module("mlflow", "tracking")
    from mlflow.tracking import MlflowClient

    return MlflowClient


class MlflowServer:
    """`mlflow server` as a user starts it: SQLite backend, artifacts served by the server."""

    def __init__(self, folder: Path, port: int):
        self.uri = f"http://127.0.0.1:{port}"
        folder.mkdir(parents=True, exist_ok=True)
        self.log = open(folder / "server.log", "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
             "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}", "--artifacts-destination",
             str(folder / "artifacts")], stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 240  # first start migrates the database: slow on a busy machine
        while time.monotonic() < deadline:
            assert self.process.poll() is None, (folder / "server.log").read_text()[-2000:]
            try:
                with urllib.request.urlopen(self.uri + "/health", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(1)
        raise AssertionError("the MLflow server did not answer in 240 s")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def test_an_unreachable_server_never_fails_a_trial_and_is_said_once(tmp_path, home, mlflow_client):
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    model = write_model(tmp_path / "knn", KNN_SOURCE, "digits_knn.py", tracked(uri, max_trials=3))
    done = mlci("run", str(model), "--home", str(home), "--no-notify")
    assert done.returncode == 3, done.stderr  # the run's own outcome: budget spent below 0.999
    [run] = RunStore(home).runs()
    assert [t.status() for t in run.trials()] == ["succeeded"] * 3
    said = " ".join(done.stderr.split())  # the console wraps at 80 columns
    assert said.count(f"MLflow at {uri} could not be reached after 3 attempts") == 1, done.stderr
    assert said.count("said once per run") == 1


def test_commands_that_do_not_track_never_import_mlflow():
    """mlflow takes seconds to import: only a run with [tracking] mlflow_uri pays for it."""
    code = ("import sys, mlci.cli, mlci.orchestration.pipeline, mlci.orchestration.lifecycle, "
            "mlci.integrations.notify, mlci.integrations.tracking, mlci.integrations.reports; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'mlflow'))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr


def test_config_rejects_a_tracking_uri_that_is_not_http(tmp_path, home):
    model = write_model(tmp_path / "knn", KNN_SOURCE, "digits_knn.py", tracked("file:///tmp/mlruns"))
    done = mlci("run", str(model), "--home", str(home), "-q", "--no-notify")
    assert done.returncode == 2
    assert "tracking.mlflow_uri" in done.stderr and "an http:// or https:// URL of an MLflow tracking server" in done.stderr


@pytest.mark.slow
def test_each_trial_is_an_mlflow_run_nested_under_the_mlci_run(tmp_path, home, mlflow_client):
    from mlci.integrations.tracking import sync

    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    knn = write_model(tmp_path / "knn", KNN_SOURCE, "digits_knn.py", tracked(uri))
    # The server is down for the first run: the trials train, and the next sync logs them.
    assert mlci("run", str(knn), "--home", str(home), "-q", "--no-notify").returncode == 3
    server = MlflowServer(tmp_path / "mlflow", port)
    try:
        [knn_run] = RunStore(home).runs()
        assert sync(knn_run, attempts=1) is True
        dense = write_model(tmp_path / "dense", KERAS_DIGITS_SOURCE, "digits_dense.py", tracked(uri))
        done = mlci("run", str(dense), "--home", str(home), "-q", "--no-notify", "--commit", "c0ffee1234")
        assert done.returncode == 3, done.stderr
        assert "MLflow" not in done.stderr  # reachable: nothing to say
        client = mlflow_client(tracking_uri=uri)
        dense_run = next(r for r in RunStore(home).runs() if r.id != knn_run.id)
        experiment = client.get_experiment_by_name("mlci/digits_dense")
        found = client.search_runs([experiment.experiment_id])
        [parent] = [r for r in found if "mlflow.parentRunId" not in r.data.tags]
        children = sorted((r for r in found if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id),
                          key=lambda r: int(r.data.tags["mlci.trial"]))
        assert parent.info.run_name == dense_run.id and parent.info.status == "FINISHED"
        assert parent.data.tags["mlflow.source.git.commit"] == "c0ffee1234"
        assert "report.html" in [a.path for a in client.list_artifacts(parent.info.run_id)]
        assert len(children) == len(dense_run.trials()) == 2
        for child, trial in zip(children, dense_run.trials()):
            assert child.data.tags["mlci.commit"] == "c0ffee1234"
            assert child.data.params == {k: str(v) for k, v in trial.hparams().hparams.items()}
            history = client.get_metric_history(child.info.run_id, "val_accuracy")
            logged = [m.value for m in sorted(history, key=lambda m: m.step)]
            metrics = trial.metrics() if trial.has_metrics() else None
            assert len(logged) >= 1 and logged == pytest.approx(epoch_curves(trial, metrics)["val_accuracy"])
            if metrics is not None:
                assert child.data.metrics["final_accuracy"] == pytest.approx(trial.metrics().value)
                assert "model.keras" in [a.path for a in client.list_artifacts(child.info.run_id)]
                assert child.info.status == "FINISHED"
            else:
                assert child.info.status in ("KILLED", "FAILED")  # pruned, or failed
        knn_runs = client.search_runs([client.get_experiment_by_name("mlci/digits_knn").experiment_id])
        assert len(knn_runs) == 3  # the parent and its two trials, logged once the server answered
        assert sync(knn_run, attempts=1) is True
        assert len(client.search_runs([client.get_experiment_by_name("mlci/digits_knn").experiment_id])) == 3  # not twice
    finally:
        server.stop()
