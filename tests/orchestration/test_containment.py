"""Containment and liveness (issue 13): a trial works in its own copy of the model's folder, a failure is
classified (restarted or failed at once), and a trial that makes no progress is stopped."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from conftest import KNN_SOURCE, mlci, write_model
from mlci.core.store import RunStore

CONFIG = 'threshold = 0.5\nmax_trials = 1\ndataset = "digits"\nrunner = "local"\nstrategy = "ladder"\n'


def digest(folder: Path) -> dict[str, str]:
    """Every file under the folder (names relative), hashed; plus the folder names themselves."""
    found = {}
    for path in sorted(folder.rglob("*")):
        name = path.relative_to(folder).as_posix()
        found[name] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
    return found


def only_run(home: Path):
    runs = RunStore(home).runs()
    assert len(runs) == 1, runs
    return runs[0]


# ----------------------------------------------------------------------------- the user's folder is never written

DESTRUCTIVE = '''
    """A build_model that deletes every file of its working directory, then trains a k-NN."""
    import os
    import shutil

    from sklearn.neighbors import KNeighborsClassifier

    HPARAMS = {"n_neighbors": 5}


    def build_model(hp):
        for name in os.listdir("."):
            shutil.rmtree(name) if os.path.isdir(name) and not os.path.islink(name) else os.remove(name)
        return KNeighborsClassifier(n_neighbors=hp["n_neighbors"])
'''


def test_a_build_model_that_deletes_its_cwd_leaves_the_users_folder_intact(tmp_path, home):
    model = write_model(tmp_path / "m", DESTRUCTIVE, "wipe.py", CONFIG)
    (model.parent / "data").mkdir()
    (model.parent / "data" / "notes.txt").write_text("keep me\n")
    (model.parent / "helper.py").write_text("X = 1\n")
    before = digest(model.parent)

    done = mlci("run", str(model), "--home", str(home))
    assert done.returncode == 0, done.stderr
    assert digest(model.parent) == before  # model file, mlci.toml, data/ and helper.py all still there
    trial = only_run(home).trial(0)
    assert trial.state().status == "succeeded"
    assert trial.work_dir == trial.dir / "work" and trial.work_dir.is_dir()
    assert list(trial.work_dir.iterdir()) == []  # what it deleted was its own copy


BIG_DATA_SCRIPT = '''
    """An unmodified script that reads its large data file, then rewrites it (as some scripts do)."""
    from pathlib import Path

    from sklearn.neighbors import KNeighborsClassifier

    data = Path("data.bin").read_bytes()
    Path("data.bin").write_bytes(b"overwritten by the script")
    Path("cache").mkdir(exist_ok=True)
    Path("cache/state.txt").write_text("rewritten")
    model = KNeighborsClassifier(n_neighbors=3)
    print(f"accuracy: {0.5 + len(data) % 7 / 100:.2f}")
'''


def test_a_script_that_rewrites_its_large_data_file_leaves_the_users_copy_intact(tmp_path, home):
    model = write_model(tmp_path / "s", BIG_DATA_SCRIPT, "rewrite_data.py", CONFIG)
    (model.parent / "data.bin").write_bytes(os.urandom(3 << 20))  # over the 1 MiB that used to be linked
    (model.parent / "cache").mkdir()
    (model.parent / "cache" / "state.txt").write_text("original")  # a subfolder: used to be linked too
    before = digest(model.parent)

    done = mlci("run", str(model), "--home", str(home))
    assert done.returncode == 0, done.stderr
    assert digest(model.parent) == before
    work = only_run(home).trial(0).work_dir
    assert (work / "data.bin").read_bytes() == b"overwritten by the script"
    assert not any(p.is_symlink() for p in work.rglob("*"))


def test_a_private_source_folder_is_copied_and_run_from_the_copy(tmp_path, home):
    """A 0700 folder (what `mktemp -d` makes) with a 0600 model: the trial reads its copy."""
    model = write_model(tmp_path / "private", KNN_SOURCE, "knn.py", CONFIG)
    os.chmod(model, 0o600)
    os.chmod(model.parent, 0o700)
    done = mlci("run", str(model), "--home", str(home))
    assert done.returncode == 0, done.stderr
    work = only_run(home).trial(0).work_dir
    assert (work / "knn.py").read_text() == model.read_text()
    log = (work.parent / "log.txt").read_text()
    assert str(model.parent) not in log


# ----------------------------------------------------------------------------- failures are classified

CRASHING_FIT = '''
    """An estimator whose fit raises {exception}: the harness has no diagnosis for it (exit 1)."""
    from sklearn.neighbors import KNeighborsClassifier

    HPARAMS = {{"n_neighbors": 5}}


    class Broken(KNeighborsClassifier):
        def fit(self, x, y):
            raise {exception}("{message}")


    def build_model(hp):
        return Broken(n_neighbors=hp["n_neighbors"])
'''


def test_a_permission_error_fails_the_trial_at_once_without_restarts(tmp_path, home):
    source = CRASHING_FIT.format(exception="PermissionError", message="cannot open /data/x")
    model = write_model(tmp_path / "p", source, "perm.py", CONFIG)
    done = mlci("run", str(model), "--home", str(home))
    assert done.returncode == 5, done.stderr
    state = only_run(home).trial(0).state()
    assert state.status == "failed" and state.restarts == []
    assert state.reason == "PermissionError: cannot open /data/x (PermissionError is deterministic: not restarted)"
    assert "PermissionError: cannot open /data/x" in done.stderr.strip().splitlines()[-1]


def test_the_same_exception_twice_fails_the_trial_after_one_restart(tmp_path, home):
    source = CRASHING_FIT.format(exception="RuntimeError", message="the disk said no")
    model = write_model(tmp_path / "r", source, "flaky.py", CONFIG)
    done = mlci("run", str(model), "--home", str(home))
    assert done.returncode == 5, done.stderr
    state = only_run(home).trial(0).state()
    assert len(state.restarts) == 1 and state.restarts[0].failure == "RuntimeError: the disk said no"
    assert state.reason == "the same exception twice: RuntimeError: the disk said no (not restarted again)"


def test_a_killed_trial_is_still_restarted(tmp_path, home):
    source = '''
        """Kills itself (SIGKILL) the first time it is built, then trains."""
        import os
        import signal
        from pathlib import Path

        from sklearn.neighbors import KNeighborsClassifier

        HPARAMS = {"n_neighbors": 5}


        def build_model(hp):
            marker = Path(os.environ["MLCI_TRIAL_DIR"]) / "killed-once"
            if not marker.exists():
                marker.write_text("1")
                os.kill(os.getpid(), signal.SIGKILL)
            return KNeighborsClassifier(n_neighbors=hp["n_neighbors"])
    '''
    model = write_model(tmp_path / "k", source, "dies.py", CONFIG)
    done = mlci("run", str(model), "--home", str(home))
    assert done.returncode == 0, done.stderr
    state = only_run(home).trial(0).state()
    assert state.status == "succeeded" and len(state.restarts) == 1
    assert state.restarts[0].reason == "killed by SIGKILL"


# ----------------------------------------------------------------------------- a trial that makes no progress

HANGING_SCRIPT = '''
    """An unmodified script that hangs after its first line of output (a dead lock, a stuck download)."""
    import time

    from sklearn.neighbors import KNeighborsClassifier

    model = KNeighborsClassifier(n_neighbors=3)
    print("loading the data", flush=True)
    time.sleep(3600)
    print("accuracy: 0.9")
'''


def test_a_hanging_script_is_stopped_by_the_stall_limit_and_the_run_says_why(tmp_path, home):
    model = write_model(tmp_path / "h", HANGING_SCRIPT, "hangs.py", CONFIG + "stall_minutes = 0.1\n")
    done = mlci("run", str(model), "--home", str(home), timeout=300)
    assert done.returncode == 5, done.stderr
    run = only_run(home)
    state = run.trial(0).state()
    assert state.status == "failed" and state.restarts == []  # a stall is not restarted
    assert state.reason.startswith("stopped: no progress for ") and "(no new epoch or log line; stall_minutes = 0.1)" \
        in state.reason
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("mlci: error: trial 0 failed: stopped: no progress for "), last
    assert run.record().status == "failed"
    assert not _alive(state.pid)  # the process was stopped, not left behind


def test_a_busy_script_past_trial_minutes_is_stopped(tmp_path, home):
    """It keeps printing (never stalls), but a trial has trial_minutes at most."""
    script = HANGING_SCRIPT.replace("time.sleep(3600)", "while True:\n        print('still working', flush=True)\n"
                                                         "        time.sleep(0.5)")
    model = write_model(tmp_path / "b", script, "busy.py", CONFIG + "trial_minutes = 0.15\nstall_minutes = 5\n")
    done = mlci("run", str(model), "--home", str(home), timeout=300)
    assert done.returncode == 5, done.stderr
    state = only_run(home).trial(0).state()
    assert state.reason.startswith("stopped: the trial ran ") and state.reason.endswith("past trial_minutes = 0.15")
    assert not _alive(state.pid)


SLOW_EPOCHS = '''
    """An incremental model with many slow epochs: max_minutes ends it after the epoch it is in."""
    import time

    from sklearn.linear_model import SGDClassifier

    HPARAMS = {"epochs": 10000}


    class Slow(SGDClassifier):
        def partial_fit(self, *args, **kwargs):
            time.sleep(0.3)
            return super().partial_fit(*args, **kwargs)


    def build_model(hp):
        return Slow(random_state=0)
'''


def test_max_minutes_ends_the_running_trial_after_its_checkpoint(tmp_path, home):
    config = CONFIG.replace("threshold = 0.5", "threshold = 0.999").replace("max_trials = 1", "max_trials = 5") \
        + "max_minutes = 0.1\n"
    model = write_model(tmp_path / "e", SLOW_EPOCHS, "slow.py", config)
    done = mlci("run", str(model), "--home", str(home), timeout=300)
    assert done.returncode == 3, done.stderr  # below the threshold, budget (time) spent
    run = only_run(home)
    trial = run.trial(0)
    assert trial.state().status == "succeeded"
    metrics = trial.metrics()
    assert 1 <= metrics.epochs_done < 10000
    assert (trial.checkpoints / "sklearn" / f"epoch-{metrics.epochs_done}.joblib").exists()
    assert "mlci: stopping after epoch" in trial.log_path.read_text()
    assert "max_minutes (0.1) reached" in " ".join(done.stdout.split())


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("key, value, allowed", [
    ("stall_minutes", "0", "allowed: a number > 0"),
    ("trial_minutes", "-1", "allowed: a number > 0"),
    ("stall_minutes", '"soon"', "expected input should be a valid number"),
])
def test_bad_limits_are_one_line_config_errors(tmp_path, home, key, value, allowed):
    model = write_model(tmp_path / "c", KNN_SOURCE, "knn.py", CONFIG + f"{key} = {value}\n")
    done = mlci("run", str(model), "--home", str(home))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"mlci: error: {model.parent / 'mlci.toml'}: key '{key}' = ")
    assert allowed in lines[0].lower()


def test_a_trial_measured_but_left_running_by_a_killed_orchestrator_is_settled(tmp_path, home):
    """Found by bench/chaos.py: the orchestrator killed between the harness writing metrics.json and it
    recording the trial's end; the next `mlci run` went on to trial 1 and trial 0 stayed "running"."""
    model = write_model(tmp_path / "o", KNN_SOURCE, "knn.py", CONFIG.replace("threshold = 0.5", "threshold = 0.999"))
    assert mlci("run", str(model), "--home", str(home)).returncode == 3
    trial = only_run(home).trial(0)
    trial.update_state(status="running", ended_at=None)  # as the killed orchestrator left it; its process exited 0
    done = mlci("run", str(model), "--home", str(home), "--max-trials", "2")
    assert done.returncode == 3, done.stderr
    run = only_run(home)
    assert [t.state().status for t in run.trials()] == ["succeeded", "succeeded"]
