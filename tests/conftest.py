"""Shared fixtures: a clean environment for TensorFlow/Keras, a run store per test, small real models."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from skips import require_module, unavailable

ROOT = Path(__file__).resolve().parents[1]
MODELS = Path(__file__).parent / "models"


@pytest.fixture(autouse=True)
def _quiet_frameworks(monkeypatch, tmp_path_factory):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path_factory.getbasetemp() / "keras-home"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    # One PyTorch thread per trial: the tests' models are tiny and the CI machine runs other work at the same
    # time, where more threads make an epoch several times slower (the default, one per CPU the trial may use,
    # is tested in the mlci/torch image: tests/runners/test_docker.py).
    monkeypatch.setenv("MLCI_TORCH_THREADS", "1")
    monkeypatch.delenv("MLCI_HOME", raising=False)
    monkeypatch.delenv("RUN_ID", raising=False)
    # Subprocesses (the CLI, the harness) import this checkout's mlci, whatever the venv points at.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("MLCI_CACHE", str(tmp_path_factory.getbasetemp() / "mlci-cache"))


@pytest.fixture
def home(tmp_path) -> Path:
    return tmp_path / "store"


def digits_trial(tmp_path: Path, hparams: dict | None = None, name: str = "t", **settings) -> Path:
    """A trial folder whose spec (hparams.json) trains on digits unless `settings` say otherwise."""
    from mlci.core.store import HparamsRecord, write_json

    folder = tmp_path / name
    write_json(folder / "hparams.json", HparamsRecord(trial=0, hparams=hparams or {}, **{"dataset": "digits", **settings}))
    return folder


def write_model(folder: Path, source: str, name: str = "model.py", config: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(source).lstrip())
    if config is not None:
        (folder / "mlci.toml").write_text(textwrap.dedent(config).lstrip())
    return path


KNN_SOURCE = '''
    """A k-nearest-neighbours model for the digits data set."""
    from sklearn.neighbors import KNeighborsClassifier

    HPARAMS = {"n_neighbors": 60, "weights": "uniform"}


    def build_model(hp):
        return KNeighborsClassifier(n_neighbors=hp["n_neighbors"], weights=hp["weights"])
'''

KERAS_DIGITS_SOURCE = '''
    """A tiny dense network for the 8x8 digits (fast enough for tests)."""
    import keras
    from keras import layers

    HPARAMS = {"dense_layers": 1, "units": 8, "dropout": 0.1, "learning_rate": 0.01, "epochs": 3, "batch_size": 32}


    def build_model(hp):
        model = keras.Sequential([keras.Input(shape=(8, 8, 1)), layers.Flatten()])
        for _ in range(hp["dense_layers"]):
            model.add(layers.Dense(hp["units"], activation="relu"))
            model.add(layers.Dropout(hp["dropout"]))
        model.add(layers.Dense(10, activation="softmax"))
        model.compile(optimizer=keras.optimizers.Adam(hp["learning_rate"]),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return model
'''


@pytest.fixture
def knn_model(tmp_path) -> Path:
    return write_model(tmp_path / "knn", KNN_SOURCE, "digits_knn.py",
                       'threshold = 0.97\nmax_trials = 6\ndataset = "digits"\nrunner = "local"\nstrategy = "ladder"\n')


@pytest.fixture
def keras_model(tmp_path) -> Path:
    return write_model(tmp_path / "dense", KERAS_DIGITS_SOURCE, "digits_dense.py",
                       'threshold = 0.9\nmax_trials = 4\ndataset = "digits"\nrunner = "local"\n')


def mlci(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 600,
         check: bool = False) -> subprocess.CompletedProcess:
    """Run the real `mlci` command in a subprocess (real exit codes, real stderr)."""
    full_env = {**os.environ, **(env or {})}
    done = subprocess.run([sys.executable, "-m", "mlci", *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"mlci {' '.join(args)} exited {done.returncode}\n{done.stdout}\n{done.stderr}")
    return done


def free_port() -> int:
    """A free TCP port on loopback, for a test's own server (SMTP, webhook, MLflow, dashboard)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ----------------------------------------------------------------------------- the Docker engine (defined once)

NO_ENGINE = {"DOCKER_HOST": "unix:///nonexistent/mlci-test-docker.sock"}
DOCKER_READY = "`make docker-ready` (scripts/docker-ready.sh) should have provided it"


@pytest.fixture(scope="module")
def engine():
    """A client of the real Docker engine with the mlci images; CI fails without them, elsewhere they skip."""
    docker = require_module("docker", "docker")
    from mlci.runners.docker import connect, engine_answers

    if not engine_answers():
        unavailable("no Docker engine answers", DOCKER_READY)
    client = connect()
    for tag in ("mlci/sklearn:latest", "mlci/keras:latest", "mlci/torch:latest"):
        try:
            client.images.get(tag)
        except docker.errors.ImageNotFound:
            unavailable(f"image {tag} is missing (build it with `mlci images build`)", DOCKER_READY)
    yield client
    for container in client.containers.list(all=True, filters={"label": "mlci.test"}):
        container.remove(force=True)


@pytest.fixture
def runner(engine):
    from mlci.runners.docker import DockerRunner

    made = DockerRunner(engine)
    yield made
    for container in made.containers():
        if container.labels.get("mlci.run", "").startswith("test-"):
            container.remove(force=True)


@pytest.fixture
def docker_runs(engine):
    """Run ids whose containers are removed after the test."""
    made: list[str] = []
    yield made
    for run_id in made:
        for container in engine.containers.list(all=True, filters={"label": f"mlci.run={run_id}"}):
            container.remove(force=True)


@pytest.fixture
def docker_home(engine, home):
    """A run store whose runs' containers are removed after the test."""
    yield home
    for run_json in home.glob("runs/*/run.json"):
        for container in engine.containers.list(all=True, filters={"label": f"mlci.run={run_json.parent.name}"}):
            container.remove(force=True)


# ----------------------------------------------------------------------------- the Jenkins chain (stand-in)


@pytest.fixture
def build_runner(tmp_path, monkeypatch):
    """Render the jobs for a model repository in tmp_path/models and return a BuildRunner for them."""
    for key in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{key}_NAME", "Test")
        monkeypatch.setenv(f"GIT_{key}_EMAIL", "test@example.com")

    def make():
        from jenkins_standin import BuildRunner, mlci_on_path

        from mlci.integrations import jenkins

        xml = jenkins.render(tmp_path / "xml", values={"git-url": str(tmp_path / "models"), "branch": "main",
                                                       "mlci-home": str(tmp_path / "mlci-home"),
                                                       "model": "digits_knn.py"})
        env = {**os.environ, "PATH": mlci_on_path(tmp_path / "bin") + os.pathsep + os.environ["PATH"]}
        runner = BuildRunner(tmp_path / "xml", tmp_path / "jenkins", env)
        assert set(runner.jobs) == set(xml.jobs) | set(xml.views)
        return runner

    return make
