"""The Docker runner and containment (issue 13): a private (0700) model folder trains, and the Jenkins chain
fetch -> launch -> wait -> check works whoever runs mlci (root, or another uid that owns the run store)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from conftest import KNN_SOURCE, ROOT, mlci, write_model
from skips import require_module, unavailable

docker = require_module("docker", "docker", module_level=True)

from mlci.core.store import RunStore  # noqa: E402

CONFIG = 'threshold = 0.5\nmax_trials = 2\ndataset = "digits"\nrunner = "docker"\nstrategy = "ladder"\n'
OTHER_UID = 1234


@pytest.mark.docker
def test_a_0700_folder_trains_in_docker_without_restarts(engine, tmp_path, home, docker_home):
    """The container's user could not read a private folder: it now gets the trial's own readable copy."""
    model = write_model(tmp_path / "private", KNN_SOURCE, "knn.py", CONFIG)
    os.chmod(model, 0o600)
    os.chmod(model.parent, 0o700)
    before = sorted((p.name, p.read_bytes()) for p in model.parent.iterdir())
    done = mlci("run", str(model), "--home", str(home))
    assert done.returncode == 0, done.stderr
    trial = RunStore(home).runs()[0].trial(0)
    state = trial.state()
    assert state.status == "succeeded" and state.restarts == [] and state.runner == "docker"
    assert sorted((p.name, p.read_bytes()) for p in model.parent.iterdir()) == before


def _as(uid: int | None, *args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    """Run `mlci ARGS` as root (uid None) or as `uid`, with the Docker socket's group as its only extra group:
    a scoped permission for this one process, nothing on the host changes."""
    command = [sys.executable, "-m", "mlci", *args]
    if uid is not None:
        socket_group = os.stat("/var/run/docker.sock").st_gid
        command = ["setpriv", f"--reuid={uid}", f"--regid={uid}", f"--groups={socket_group}", "--", *command]
    # umask 077: what a private CI user has; the snapshot and the trial's copy must still be readable
    return subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=600,
                          preexec_fn=lambda: os.umask(0o077))


@pytest.mark.docker
@pytest.mark.parametrize("uid", [None, OTHER_UID], ids=["root", f"uid-{OTHER_UID}"])
def test_fetch_launch_wait_check_in_docker_as_root_and_as_another_uid(engine, uid):
    if os.geteuid() != 0:
        unavailable("switching to another uid needs root (setpriv)", "run the Docker tests as root, as make test does")
    if shutil.which("setpriv") is None or not Path("/var/run/docker.sock").exists():
        unavailable("needs setpriv and the engine's unix socket", "install util-linux and start the engine (scripts/docker-ready.sh)")
    base = Path(tempfile.mkdtemp(prefix="mlci-uid-"))  # outside pytest's 0700 root-only temp folder
    try:
        os.chmod(base, 0o755)
        repo, home, user_home = base / "repo", base / "store", base / "home"
        write_model(repo, KNN_SOURCE, "knn.py", CONFIG)
        user_home.mkdir()
        env = {"PATH": os.environ["PATH"], "HOME": str(user_home), "PYTHONPATH": str(ROOT / "src"),
               "KERAS_HOME": str(user_home / "keras"), "MLCI_CACHE": str(user_home / "cache"),
               "TF_CPP_MIN_LOG_LEVEL": "3", "GIT_CONFIG_NOSYSTEM": "1"}
        git = ["git", "-c", "user.email=a@b", "-c", "user.name=a"]
        for step in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-qm", "model"]):
            subprocess.run([*git, *step], cwd=repo, check=True, capture_output=True, env=env)
        if uid is not None:
            for path in [base, *base.rglob("*")]:
                os.chown(path, uid, uid, follow_symlinks=False)

        fetched = _as(uid, "fetch", str(repo), "--model", "knn.py", "--home", str(home), env=env, cwd=base)
        assert fetched.returncode == 0, fetched.stderr
        facts = dict(line.split("=", 1) for line in fetched.stdout.split())
        run_id = facts["RUN_ID"]
        for step in (["launch"], ["wait"], ["check"]):
            done = _as(uid, *step, "--run", run_id, "--home", str(home), env=env, cwd=base)
            assert done.returncode == 0, (step, done.stdout, done.stderr)
        trial = RunStore(home).run(run_id).trial(0)
        state = trial.state()
        assert state.status == "succeeded" and state.restarts == [] and state.runner == "docker"
        expected_user = "1000:1000" if uid is None else f"{uid}:{uid}"
        assert state.user == expected_user
        assert trial.metrics().value >= 0.5
        owner = trial.metrics_path.stat().st_uid
        assert owner == (1000 if uid is None else uid)
    finally:
        for container in engine.containers.list(all=True, filters={"label": "mlci.model=knn"}):
            if str(base) in str(container.attrs.get("Mounts")):
                container.remove(force=True)
        shutil.rmtree(base, ignore_errors=True)
