"""The Docker runner and the training images, against a real Docker engine.

Docker-marked tests need an engine and the mlci images (`make test` starts one and builds them);
with CI=true a missing engine or image fails them, elsewhere they are skipped with the reason.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import KERAS_DIGITS_SOURCE, KNN_SOURCE, NO_ENGINE, mlci, write_model
from skips import require_module

require_module("docker", "docker", module_level=True)  # the SDK: CI fails without it, elsewhere the file skips

from mlci.core.config import ResourcesConfig  # noqa: E402
from mlci.core.errors import RunnerError  # noqa: E402
from mlci.runners.base import LaunchSpec  # noqa: E402
from mlci.core.store import HparamsRecord, MetricsRecord, RunRecord, TrialState, write_json  # noqa: E402

def _docker_toml(extra: str = "") -> str:
    return f'threshold = 0.5\nmax_trials = 2\ndataset = "digits"\nrunner = "docker"\n{extra}'


def _spec(tmp_path: Path, model: Path, run_id: str, hparams: dict, framework: str = "sklearn",
          resources: ResourcesConfig | None = None, image: str | None = None) -> LaunchSpec:
    trial_dir = tmp_path / "store" / "runs" / run_id / "trials" / "0"
    trial_dir.mkdir(parents=True, exist_ok=True)
    write_json(trial_dir / "hparams.json", HparamsRecord(trial=0, hparams=hparams, dataset="digits"))
    return LaunchSpec(run_id=run_id, trial=0, model_name=model.stem, model_file=model, source_dir=model.parent,
                      trial_dir=trial_dir, framework=framework, image=image,
                      resources=resources or ResourcesConfig())


def read_record(path: Path, record_type):
    return record_type.model_validate_json(path.read_text())


def _run_dir(home: Path) -> Path:
    runs = [p for p in (home / "runs").iterdir() if (p / "run.json").exists()]
    assert len(runs) == 1, runs
    return runs[0]


# ----------------------------------------------------------------------------- end to end


@pytest.mark.docker
def test_run_sklearn_in_docker_end_to_end(engine, tmp_path, home, docker_home):
    model = write_model(tmp_path / "knn", KNN_SOURCE, "digits_knn.py", _docker_toml())
    done = mlci("run", str(model), "--home", str(home), "--runner", "docker")
    assert done.returncode == 0, done.stderr
    run_dir = _run_dir(home)
    trial = run_dir / "trials" / "0"
    state = read_record(trial / "trial.json", TrialState)
    assert state.runner == "docker" and state.status == "succeeded" and state.exit_code == 0
    assert state.image == "mlci/sklearn:latest"
    assert state.user and not state.user.startswith("0")
    container = engine.containers.get(state.container_id)
    assert container.labels["mlci.run"] == run_dir.name and container.labels["mlci.trial"] == "0"
    assert container.labels["mlci.model"] == "digits_knn"
    metrics = read_record(trial / "metrics.json", MetricsRecord)
    assert metrics.value >= 0.5 and metrics.framework == "sklearn"
    assert (trial / "model.joblib").stat().st_size > 0
    assert (run_dir / "best" / "metrics.json").exists()
    assert "accuracy" in (trial / "log.txt").read_text()
    assert read_record(run_dir / "run.json", RunRecord).status == "met"


@pytest.mark.docker
@pytest.mark.slow
def test_run_keras_in_docker_end_to_end(engine, tmp_path, home, docker_home):
    model = write_model(tmp_path / "dense", KERAS_DIGITS_SOURCE, "digits_dense.py", _docker_toml())
    done = mlci("run", str(model), "--home", str(home), "--runner", "docker")
    assert done.returncode == 0, done.stderr
    trial = _run_dir(home) / "trials" / "0"
    state = read_record(trial / "trial.json", TrialState)
    assert state.runner == "docker" and state.image == "mlci/keras:latest" and state.status == "succeeded"
    metrics = read_record(trial / "metrics.json", MetricsRecord)
    assert metrics.framework == "keras" and metrics.epochs_done == 3 and metrics.value >= 0.5
    assert (trial / "model.keras").stat().st_size > 0
    assert any((trial / "checkpoints").iterdir())
    assert "epoch 3/3" in (trial / "log.txt").read_text()


TORCH_DIGITS_SOURCE = '''
    """A small PyTorch network for the 8x8 digits."""
    from torch import nn

    HPARAMS = {"units": 32, "learning_rate": 0.01, "epochs": 3, "batch_size": 32}


    def build_model(hp):
        return nn.Sequential(nn.Flatten(), nn.Linear(64, hp["units"]), nn.ReLU(), nn.Linear(hp["units"], 10))
'''


@pytest.mark.docker
def test_run_torch_module_in_its_image_end_to_end(engine, tmp_path, home, docker_home):
    """mlci/torch: the CPU build of PyTorch, the harness's loop, a checkpoint per epoch; threads follow the CPU quota."""
    model = write_model(tmp_path / "torch", TORCH_DIGITS_SOURCE, "digits_torch.py",
                        _docker_toml())
    done = mlci("run", str(model), "--home", str(home), "--runner", "docker")
    assert done.returncode == 0, done.stderr
    trial = _run_dir(home) / "trials" / "0"
    state = read_record(trial / "trial.json", TrialState)
    assert state.runner == "docker" and state.image == "mlci/torch:latest" and state.status == "succeeded"
    metrics = read_record(trial / "metrics.json", MetricsRecord)
    assert metrics.framework == "torch" and metrics.epochs_done == 3 and metrics.value >= 0.5
    assert metrics.versions["torch"] == "2.13.0+cpu"
    assert (trial / "model.pt").stat().st_size > 0
    assert sorted(p.name for p in (trial / "checkpoints" / "torch").iterdir()) == ["epoch-2.pt", "epoch-3.pt"]
    assert "epoch 3/3" in (trial / "log.txt").read_text()
    threads = engine.containers.run("mlci/torch:latest", ["python", "-c", "import torch, pytorch_lightning; "
                                    "from mlci.harness.torch_fit import configure; configure(torch); "
                                    "print(torch.get_num_threads(), torch.version.cuda)"],
                                    entrypoint=[], nano_cpus=10**9, remove=True, labels={"mlci.test": "1"})
    assert threads.decode().split() == ["1", "None"]  # a one-CPU container: one thread, whatever the host has


@pytest.mark.docker
def test_jenkins_steps_launch_and_wait_in_separate_processes(engine, tmp_path, home, docker_home):
    """Job 2 starts the container and exits; job 3, another process, waits for it by its id."""
    model = write_model(tmp_path / "knn", KNN_SOURCE, "digits_knn.py", _docker_toml())
    props = tmp_path / "props.txt"
    mlci("fetch", str(model.parent), "--model", model.name, "--home", str(home), "--properties", str(props),
         check=True)
    run_id = dict(line.split("=", 1) for line in props.read_text().split())["RUN_ID"]
    launched = mlci("launch", "--run", run_id, "--home", str(home), "--runner", "docker", check=True)
    assert "TRIAL=0" in launched.stdout
    trial = home / "runs" / run_id / "trials" / "0"
    state = read_record(trial / "trial.json", TrialState)
    assert state.runner == "docker" and state.container_id and state.image == "mlci/sklearn:latest"
    mlci("wait", "--run", run_id, "--home", str(home), check=True)
    state = read_record(trial / "trial.json", TrialState)
    assert state.status == "succeeded" and state.exit_code == 0
    assert read_record(trial / "metrics.json", MetricsRecord).framework == "sklearn"


# ----------------------------------------------------------------------------- isolation and limits

PROBE_SOURCE = '''
    """Reports, at import, who it runs as and what it may touch; then a plain k-NN model."""
    import json
    import os
    from pathlib import Path

    from sklearn.neighbors import KNeighborsClassifier

    HPARAMS = {"n_neighbors": 3}


    def _try_write(path):
        try:
            Path(path).write_text("x")
            return "written"
        except OSError as exc:
            return exc.strerror


    Path(os.environ["MLCI_TRIAL_DIR"], "probe.json").write_text(json.dumps({
        "uid": os.getuid(), "gid": os.getgid(),
        "model_write": _try_write(Path(__file__).with_name("written.txt")),
        "root_fs_write": _try_write("/opt/written.txt"),
        "interfaces": sorted(os.listdir("/sys/class/net")),
    }))


    def build_model(hp):
        return KNeighborsClassifier(n_neighbors=hp["n_neighbors"])
'''


@pytest.mark.docker
def test_container_is_non_root_limited_and_never_mounts_the_users_folder(runner, tmp_path):
    model = write_model(tmp_path / "probe", PROBE_SOURCE, "probe_knn.py")
    resources = ResourcesConfig(memory="768m", cpus=1.5, network="none")
    spec = _spec(tmp_path, model, "test-probe", {"n_neighbors": 3}, resources=resources)
    handle = runner.start(spec)
    status = runner.wait(handle, timeout=300)
    log = (spec.trial_dir / "log.txt").read_text()
    assert status.succeeded, (status, log)

    attrs = runner.client.containers.get(handle).attrs
    host = attrs["HostConfig"]
    assert attrs["Config"]["User"] not in ("", "0", "root") and not attrs["Config"]["User"].startswith("0:")
    assert host["Memory"] == 768 * 1024**2 and host["MemorySwap"] == 768 * 1024**2
    assert host["NanoCpus"] == 1_500_000_000
    assert host["NetworkMode"] == "none"
    assert host["Privileged"] is False and host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"] and "no-new-privileges" in host["SecurityOpt"]
    mounts = {m["Destination"]: m for m in attrs["Mounts"]}
    assert list(mounts) == ["/trial"] and mounts["/trial"]["RW"] is True  # the user's folder is not mounted
    assert attrs["Config"]["WorkingDir"] == "/trial/work"

    probe = json.loads((spec.trial_dir / "probe.json").read_text())
    assert probe["uid"] != 0 and probe["gid"] != 0
    assert probe["model_write"] == "written"  # into the trial's own copy of the folder
    assert (spec.trial_dir / "work" / "written.txt").exists() and not (model.parent / "written.txt").exists()
    assert probe["root_fs_write"] == "Read-only file system"
    assert probe["interfaces"] == ["lo"]  # network "none"
    assert (spec.trial_dir / "metrics.json").exists() and (spec.trial_dir / "model.joblib").exists()
    state = read_record(spec.trial_dir / "trial.json", TrialState)
    assert state.container_id == handle and state.image == "mlci/sklearn:latest"
    assert state.user == attrs["Config"]["User"]
    assert "accuracy" in runner.logs(handle)  # docker logs and log.txt both get the output


@pytest.mark.docker
def test_stale_container_of_the_same_trial_is_replaced(runner, tmp_path):
    model = write_model(tmp_path / "knn", KNN_SOURCE, "digits_knn.py")
    spec = _spec(tmp_path, model, "test-stale", {"n_neighbors": 5, "weights": "uniform"})
    first = runner.start(spec)
    second = runner.start(spec)
    assert first != second
    assert runner.status(first).state == "missing"
    assert [c.id for c in runner.containers("test-stale")] == [second]
    assert runner.wait(second, timeout=300).succeeded


@pytest.mark.docker
def test_killed_container_reports_the_signal(runner, tmp_path):
    model = write_model(tmp_path / "knn", 'import time\ntime.sleep(600)\n' + KNN_SOURCE.replace("\n    ", "\n"),
                        "sleepy.py")
    spec = _spec(tmp_path, model, "test-kill", {"n_neighbors": 5, "weights": "uniform"})
    handle = runner.start(spec)
    assert runner.status(handle).state == "running"
    runner.kill(handle)
    status = runner.status(handle)
    assert status.state == "killed" and status.signal == 9 and status.reason == "killed by SIGKILL"


# ----------------------------------------------------------------------------- wrong images and values


@pytest.mark.docker
@pytest.mark.parametrize("image, message", [
    ("mlci/sklearn:0.0.0-missing",
     "image 'mlci/sklearn:0.0.0-missing' for sklearn models is not in the Docker engine; build it with "
     "`mlci images build sklearn` (where no image registry is reachable, run `sudo mlci images make-base` "
     "first)"),
    ("example.org/team/sklearn:9",
     "image 'example.org/team/sklearn:9' for sklearn models is not in the Docker engine; pull it "
     "(`docker pull example.org/team/sklearn:9`), or set mlci.toml [images] sklearn = \"mlci/sklearn:latest\" "
     "and build that with `mlci images build sklearn`"),
    ("mlci/keras:latest", "image 'mlci/keras:latest' trains keras models, but the model is sklearn; set mlci.toml "
     "[images] sklearn to an image labelled mlci.framework=sklearn"),
])
def test_missing_or_mismatched_image_is_a_clear_error(engine, tmp_path, home, docker_home, image, message):
    model = write_model(tmp_path / "knn", KNN_SOURCE, "digits_knn.py", _docker_toml(f'[images]\nsklearn = "{image}"\n'))
    done = mlci("run", str(model), "--home", str(home), "--runner", "docker")
    assert done.returncode == 7
    assert message in done.stderr.strip().splitlines()[-1]


@pytest.mark.docker
@pytest.mark.parametrize("resources, code, message", [
    ('memory = "12x"', 2, "key 'resources.memory' = '12x' is invalid; allowed: a size such as '512m' or '2g'"),
    ('memory = "8m"', 2, "[resources] memory = '8m' is too small to start a training container; allowed: at least"),
    ("cpus = 500", 2, "[resources] cpus = 500 is more than the Docker engine has"),
    ("cpus = 0", 2, "key 'resources.cpus' = 0 is invalid; allowed: a number > 0"),
    ('network = "no-such-net"', 2, "[resources] network = 'no-such-net' is not a network of the Docker engine"),
    ("gpus = -1", 2, "key 'resources.gpus' = -1 is invalid; allowed: a number >= 0"),
])
def test_bad_resources_are_clear_errors(engine, tmp_path, home, docker_home, resources, code, message):
    model = write_model(tmp_path / "knn", KNN_SOURCE, "digits_knn.py", _docker_toml(f"[resources]\n{resources}\n"))
    done = mlci("run", str(model), "--home", str(home), "--runner", "docker")
    assert done.returncode == code, done.stderr
    assert message in done.stderr.strip().splitlines()[-1]
    assert engine.containers.list(all=True, filters={"label": "mlci.model=digits_knn"}) == [] or code == 2


@pytest.mark.docker
def test_gpus_without_a_gpu_runtime_is_a_clear_error(runner, tmp_path):
    if "nvidia" in (runner.info().get("Runtimes") or {}):
        pytest.skip("this engine has the NVIDIA runtime")
    model = write_model(tmp_path / "knn", KNN_SOURCE, "digits_knn.py")
    spec = _spec(tmp_path, model, "test-gpu", {"n_neighbors": 5, "weights": "uniform"},
                 resources=ResourcesConfig(gpus=1))
    with pytest.raises(RunnerError) as caught:
        runner.start(spec)
    assert "[resources] gpus = 1 but the Docker engine" in str(caught.value)
    assert "has no GPU runtime" in str(caught.value) and "NVIDIA Container Toolkit" in str(caught.value)
    assert runner.containers("test-gpu") == []  # the container that could not start is not left behind


# ----------------------------------------------------------------------------- engine lost mid-run


class SocketProxy:
    """A real byte-for-byte forwarder between a unix socket and the real engine's socket.

    Stopping it is, for mlci, exactly an engine that stopped answering; the real engine (and other
    users of it) keep running, so the test can check that a rerun continues the same trial.
    """

    def __init__(self, listen: Path, target: str):
        self.listen, self.target = listen, target
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(listen))
        self.server.listen(16)
        self.sockets: list[socket.socket] = []
        self.stopped = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopped.is_set():
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self.target)
            self.sockets += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src, dst):
        try:
            while chunk := src.recv(65536):
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            for end in (src, dst):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self):
        self.stopped.set()
        self.server.close()
        for sock in self.sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            except OSError:
                pass
        self.listen.unlink(missing_ok=True)


@pytest.mark.docker
@pytest.mark.slow
def test_engine_lost_mid_run_is_a_clear_error_and_a_rerun_continues(engine, tmp_path, home, docker_home):
    real = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not real.startswith("unix://"):
        pytest.skip("the proxy forwards to a unix socket engine")
    proxy = SocketProxy(tmp_path / "engine.sock", real[len("unix://"):])
    source = KERAS_DIGITS_SOURCE.replace('"epochs": 3', '"epochs": 40')
    model = write_model(tmp_path / "dense", source, "digits_dense.py", _docker_toml())
    env = {"DOCKER_HOST": f"unix://{proxy.listen}"}
    process = subprocess.Popen([sys.executable, "-m", "mlci", "run", str(model), "--home", str(home),
                                "--runner", "docker"], env={**os.environ, **env}, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        heartbeat = None
        while time.monotonic() < deadline and heartbeat is None:
            found = list((home / "runs").glob("*/trials/0/heartbeat")) if (home / "runs").exists() else []
            heartbeat = found[0] if found and "epoch" in found[0].read_text() else None
            time.sleep(0.5)
        assert heartbeat is not None, "the container never started training"
        proxy.stop()
        _, stderr = process.communicate(timeout=120)
    finally:
        proxy.stop()
        if process.poll() is None:
            process.kill()
    assert process.returncode == 7, stderr
    line = stderr.strip().splitlines()[-1]
    assert f"the Docker engine at unix://{proxy.listen} stopped answering while" in line
    assert "rerun the same command to continue" in line

    run_dir = _run_dir(home)
    record = read_record(run_dir / "run.json", RunRecord)
    assert record.status == "failed" and "stopped answering" in record.message
    state = read_record(run_dir / "trials" / "0" / "trial.json", TrialState)
    assert state.status == "running" and state.container_id  # the container trains on, in the real engine

    done = mlci("run", str(model), "--home", str(home), "--runner", "docker")  # the real engine again
    assert done.returncode == 0, done.stderr
    state = read_record(run_dir / "trials" / "0" / "trial.json", TrialState)
    assert state.status == "succeeded" and state.restarts == []  # waited for the same container
    assert read_record(run_dir / "trials" / "0" / "metrics.json", MetricsRecord).epochs_done == 40


# ----------------------------------------------------------------------------- images


@pytest.mark.docker
def test_images_build_skips_unchanged_images(engine):
    from mlci.runners.images import build_images

    first = build_images(["sklearn"], client=engine)  # builds only what changed since `make docker-ready`
    again = build_images(["sklearn"], client=engine)
    assert [(r.name, r.built) for r in again] == [("base", False), ("sklearn", False)]
    assert [r.image_id for r in again] == [r.image_id for r in first]
    assert [engine.images.get(f"mlci/{r.name}:latest").id for r in again] == [r.image_id for r in again]
    built = mlci("images", "build", "sklearn")
    assert built.returncode == 0, built.stderr
    assert [line.split()[0] + " " + line.split()[-1] for line in built.stdout.splitlines()] == \
           [f"{again[0].tag} unchanged", f"{again[1].tag} unchanged"]
    listed = mlci("images", "list")
    assert listed.returncode == 0 and "mlci/sklearn" in listed.stdout and "keras" in listed.stdout


# ----------------------------------------------------------------------------- no engine (runs everywhere)


def test_docker_runner_without_an_engine_says_how_to_start_one(tmp_path, home):
    model = write_model(tmp_path / "knn", KNN_SOURCE, "digits_knn.py", _docker_toml())
    done = mlci("run", str(model), "--home", str(home), "--runner", "docker", env=NO_ENGINE)
    assert done.returncode == 7
    line = done.stderr.strip().splitlines()[-1]
    assert "Traceback" not in done.stderr
    assert line.startswith("mlci: error: no Docker engine answers at unix:///nonexistent/mlci-test-docker.sock")
    assert "DOCKER_HOST" in line and "dockerd" in line and "--runner local" in line


def test_auto_runner_without_an_engine_trains_locally_with_a_notice(tmp_path, home):
    model = write_model(tmp_path / "knn", KNN_SOURCE, "digits_knn.py", _docker_toml().replace('"docker"', '"auto"'))
    done = mlci("run", str(model), "--home", str(home), env=NO_ENGINE)
    assert done.returncode == 0, done.stderr
    assert "runner=auto: no Docker engine answers, training in local processes" in done.stderr
    state = read_record(_run_dir(home) / "trials" / "0" / "trial.json", TrialState)
    assert state.runner == "warm" and state.pid  # local trials fork from a warm worker by default (workers = "warm")


def test_logtee_copies_output_to_the_log_and_keeps_the_exit_code(tmp_path):
    log = tmp_path / "log.txt"
    log.write_text("earlier\n")
    done = subprocess.run([sys.executable, "-m", "mlci.runners.logtee", str(log), "--", sys.executable, "-c",
                           "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"],
                          capture_output=True, text=True)
    assert done.returncode == 3
    assert done.stdout.splitlines() == ["out", "err"]
    assert log.read_text().splitlines() == ["earlier", "out", "err"]
    missing = subprocess.run([sys.executable, "-m", "mlci.runners.logtee", str(log), "--", "/no/such/program"],
                             capture_output=True, text=True)
    assert missing.returncode == 127 and "cannot start /no/such/program" in log.read_text()


def test_memory_sizes():
    from mlci.runners.docker import memory_bytes

    assert memory_bytes("512m") == 512 * 1024**2 and memory_bytes("2g") == 2 * 1024**3
    assert memory_bytes("1024k") == 1024**2 and memory_bytes("4096") == 4096


def test_images_commands_without_an_engine_say_how_to_start_one():
    for args in (("images", "build"), ("images", "list")):
        done = mlci(*args, env=NO_ENGINE)
        assert done.returncode == 7
        assert done.stderr.strip() == ("mlci: error: no Docker engine answers at unix:///nonexistent/"
                                       "mlci-test-docker.sock (no such file or directory); start one with "
                                       "`sudo scripts/docker-setup.sh` (or `sudo dockerd &`), or point DOCKER_HOST "
                                       "at a running engine")
