"""The monitor (job 6) on real processes: kill training at random points, it resumes where it stopped.

Chaos tests kill a seeded Keras trial several times and compare its final accuracy with an uninterrupted
run of the same seed (exact equality: the resume restores weights, optimizer and random streams).
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import KERAS_DIGITS_SOURCE, KNN_SOURCE, mlci, write_model
from mlci.core.config import validate_config
from mlci.core.errors import ConfigError
from mlci.orchestration.lifecycle import (backoff_delay, checkpoint_epoch, epochs_logged, heartbeat, launch_trial,
                                          settle)
from mlci.orchestration.runs import prepare_run
from mlci.runners import LocalRunner
from mlci.core.store import HparamsRecord, MetricsRecord, RunStore, write_json

EPOCHS = 8
CHAOS_SOURCE = KERAS_DIGITS_SOURCE.replace('"epochs": 3, "batch_size": 32', f'"epochs": {EPOCHS}, "batch_size": 8')
CHAOS_CONFIG = '''
threshold = 0.5
max_trials = 1
dataset = "digits"
runner = "local"
max_restarts = 4

[monitor]
backoff = 0.0
'''
WAIT = 240  # seconds: a 2-core machine shared with other jobs imports TensorFlow slowly


@pytest.fixture(autouse=True)
def _absolute_pythonpath(monkeypatch):
    """Trials run in their model's folder: a relative PYTHONPATH=src would load another copy of mlci there."""
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if paths:
        monkeypatch.setenv("PYTHONPATH", os.pathsep.join(str(Path(p).resolve()) for p in paths))


@pytest.fixture
def chaos_model(tmp_path) -> Path:
    return write_model(tmp_path / "chaos", CHAOS_SOURCE, "digits_dense.py", CHAOS_CONFIG)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> MetricsRecord:
    """The same trial trained once without interruption (same hyperparameters, seed 0)."""
    base = tmp_path_factory.mktemp("reference")
    model = write_model(base / "m", CHAOS_SOURCE, "digits_dense.py")
    folder = base / "trial"
    hparams = {"dense_layers": 1, "units": 8, "dropout": 0.1, "learning_rate": 0.01, "epochs": EPOCHS, "batch_size": 8}
    write_json(folder / "hparams.json", HparamsRecord(trial=0, hparams=hparams, dataset="digits", seed=0))
    done = mlci("train", "--trial-dir", str(folder), "--model", str(model))
    assert done.returncode == 0, done.stderr
    return MetricsRecord.model_validate_json((folder / "metrics.json").read_text())


def background(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mlci", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def wait_for(condition, what: str, timeout: float = WAIT, process: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if process is not None and process.poll() is not None:
            raise AssertionError(f"process ended ({process.returncode}) while waiting for {what}: "
                                 f"{process.stdout.read()} {process.stderr.read()}")
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def the_trial(home: Path, number: int = 0):
    runs = RunStore(home).runs()
    return runs[0].trial(number) if runs and runs[0].trial(number).state_path.exists() else None


def trial_pid(home: Path) -> int | None:
    trial = the_trial(home)
    if trial is None:
        return None
    state = trial.state()
    return state.pid if state.status == "running" else None


def kill_at_epoch(home: Path, epoch: int, rng: random.Random, process: subprocess.Popen | None = None) -> tuple[int, int]:
    """SIGKILL the trial's process once it has finished `epoch` epochs, a random moment into the next one.

    Returns (pid killed, epochs its checkpoint holds after the kill)."""
    wait_for(lambda: the_trial(home) is not None and trial_pid(home) and trained_to(the_trial(home), epoch),
             f"epoch {epoch}", process=process)
    pid = trial_pid(home)
    time.sleep(rng.uniform(0.0, 1.2))
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not os.path.exists(f"/proc/{pid}") or _zombie(pid), f"pid {pid} to die", timeout=10)
    return pid, checkpoint_epoch(the_trial(home)) or 0


def trained_to(trial, epoch: int) -> bool:
    """The trial's current attempt (not an earlier one, still importing) trains, and `epoch` epochs are done."""
    launched = trial.state().launched_at or 0.0
    return heartbeat(trial).get("time", 0) >= launched and epochs_logged(trial) >= epoch


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_bytes().split(b")")[-1].split()[0] == b"Z"
    except OSError:
        return True


def attempts(trial) -> int:
    """How many training processes started on the trial (each echoes its hyperparameters once)."""
    return trial.log_path.read_text().count(f"trial {trial.number}: digits_dense.py with")


def assert_same_as_reference(trial, reference: MetricsRecord) -> None:
    metrics = trial.metrics()
    assert metrics.epochs_done == EPOCHS
    assert metrics.accuracy == reference.accuracy
    assert metrics.history["val_accuracy"] == pytest.approx(reference.history["val_accuracy"], abs=1e-6)


# ----------------------------------------------------------------------------- chaos: killed trial processes


@pytest.mark.slow
def test_mlci_run_heals_a_trial_sigkilled_three_times_and_matches_an_uninterrupted_run(chaos_model, home, reference):
    rng = random.Random(6)
    run = background("run", str(chaos_model), "--home", str(home), "-q", "--no-notify")
    killed = []
    epoch = 0
    for _ in range(3):
        epoch = rng.randint(epoch + 1, min(epoch + 2, EPOCHS - 2))
        pid, held = kill_at_epoch(home, epoch, rng, run)
        killed.append(held)
        wait_for(lambda: trial_pid(home) not in (None, pid), "the restart", process=run)
    out, err = run.communicate(timeout=WAIT)
    assert run.returncode == 0, err
    trial = the_trial(home)
    state = trial.state()
    assert state.status == "succeeded" and len(state.restarts) == 3 and attempts(trial) == 4
    assert [r.reason for r in state.restarts] == ["killed by SIGKILL"] * 3
    assert [r.exit_code for r in state.restarts] == [137] * 3
    assert [r.resumed_from_epoch for r in state.restarts] == killed
    log = trial.log_path.read_text()
    for held in killed:
        assert held >= 1 and f"resuming from the checkpoint after epoch {held}\n" in log
    assert_same_as_reference(trial, reference)
    assert "killed by SIGKILL; restarting it from epoch" in err
    page = (trial.run.dir / "report.html").read_text()
    assert "<h2>Restarts</h2>" in page and "<td>killed by SIGKILL</td><td>137</td>" in page
    assert f"<td>epoch {killed[0]}</td>" in page


@pytest.mark.slow
def test_monitor_and_wait_both_see_each_death_and_the_trial_is_relaunched_once(chaos_model, home, reference):
    """Jenkins' way: job 2 launches, job 3 waits, job 6 monitors; both watchers race for every death."""
    run, _ = prepare_run(chaos_model, store=RunStore(home))
    assert mlci("launch", "--run", run.id, "--home", str(home), check=True).returncode == 0
    watcher = background("monitor", "--run", run.id, "--home", str(home), "--poll", "0.5")
    waiter = background("wait", "--run", run.id, "--trial", "0", "--home", str(home))
    rng = random.Random(7)
    epoch = 0
    for _ in range(2):
        epoch = rng.randint(epoch + 1, epoch + 2)
        pid, _held = kill_at_epoch(home, epoch, rng, waiter)
        wait_for(lambda: trial_pid(home) not in (None, pid), "the restart", process=waiter)
    out, err = waiter.communicate(timeout=WAIT)
    assert waiter.returncode == 0, err
    assert "trial 0: accuracy" in out
    watcher.send_signal(signal.SIGTERM)
    summary, watcher_err = watcher.communicate(timeout=30)
    assert watcher.returncode == 0, watcher_err
    assert "running trial(s)" in summary
    trial = run.trial(0)
    state = trial.state()
    assert state.status == "succeeded" and len(state.restarts) == 2
    assert attempts(trial) == 3  # one relaunch per death, never two
    assert_same_as_reference(trial, reference)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["rerun", "monitor-once", "orphan"])
def test_killing_mlci_run_itself_loses_and_duplicates_nothing(chaos_model, home, reference, how):
    """rerun: `mlci run` and its trial are SIGKILLed, `mlci run` again resumes the trial.
    monitor-once: the same, healed by `mlci monitor --once` (a Jenkins timer) before `mlci run` comes back.
    orphan: only `mlci run` dies; its trial trains on, and the next `mlci run` follows it (no restart)."""
    first = background("run", str(chaos_model), "--home", str(home), "-q", "--no-notify")
    wait_for(lambda: the_trial(home) is not None and epochs_logged(the_trial(home)) >= 2 and trial_pid(home),
             "epoch 2", process=first)
    trial_process = trial_pid(home)
    first.send_signal(signal.SIGKILL)
    first.wait()
    if how != "orphan":
        os.kill(trial_process, signal.SIGKILL)
        wait_for(lambda: not os.path.exists(f"/proc/{trial_process}") or _zombie(trial_process), "the trial to die")
    trial = the_trial(home)
    assert trial.state().status == "running"  # what the dead orchestrator left behind
    if how == "monitor-once":
        healed = mlci("monitor", "--once", "--home", str(home))
        assert healed.returncode == 0, healed.stderr
        assert "1 restarted" in healed.stdout
        assert trial.state().pid not in (None, trial_process)
    again = mlci("run", str(chaos_model), "--home", str(home), "-q", "--no-notify", timeout=WAIT)
    assert again.returncode == 0, again.stderr
    [run] = RunStore(home).runs()
    assert run.trial_numbers() == [0]  # no trial lost, none duplicated
    state = trial.state()
    assert state.status == "succeeded"
    if how == "orphan":
        assert state.restarts == [] and attempts(trial) == 1
    else:
        [restart] = state.restarts
        assert attempts(trial) == 2 and restart.resumed_from_epoch >= 2
        assert ("found dead after the orchestrator stopped" in restart.reason) == (how == "rerun")
        assert "killed" in restart.reason
        assert f"resuming from the checkpoint after epoch {restart.resumed_from_epoch}\n" in trial.log_path.read_text()
    assert_same_as_reference(trial, reference)


@pytest.mark.slow
def test_torn_checkpoints_fall_back_to_the_previous_one_then_a_clean_start(tmp_path, reference):
    """Truncated weights, a torn epoch file, then both weight copies truncated: warnings, never a crash loop."""
    model = write_model(tmp_path / "m", CHAOS_SOURCE, "digits_dense.py")
    folder = tmp_path / "trial"
    write_json(folder / "hparams.json", HparamsRecord(trial=0, hparams={}, dataset="digits", seed=0))
    keras_dir = folder / "checkpoints" / "keras"
    args = ("train", "--trial-dir", str(folder), "--model", str(model))

    def train_until(epochs: int) -> None:
        process = background(*args)
        wait_for(lambda: epochs_logged_in(folder) >= epochs, f"epoch {epochs}", process=process)
        process.send_signal(signal.SIGKILL)
        process.wait()

    train_until(3)
    held = json.loads((keras_dir / "training_metadata.json").read_text())["epoch"]
    weights = keras_dir / "latest.weights.h5"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    process = background(*args)
    wait_for(lambda: epochs_logged_in(folder) >= held + 1, "training again", process=process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    log = process.stdout.read()
    assert "warning: checkpoint latest.weights.h5 is unreadable" in log and "trying the previous one" in log
    assert f"resuming from the checkpoint after epoch {held - 1}\n" in log

    held = json.loads((keras_dir / "training_metadata.json").read_text())["epoch"]
    (keras_dir / "training_metadata.json").write_text('{"epo')  # torn by a kill mid-write
    process = background(*args)
    wait_for(lambda: epochs_logged_in(folder) >= held + 1, "training again", process=process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert f"resuming from the checkpoint after epoch {held}\n" in process.stdout.read()

    for name in ("latest.weights.h5", "latest.weights.h5.bkp"):
        (keras_dir / name).write_bytes(b"\x89HDF\r\n")
    done = mlci(*args)
    assert done.returncode == 0, done.stderr
    assert "warning: no readable checkpoint; training this trial again from the start" in done.stdout
    assert_same_metrics(folder, reference)


def epochs_logged_in(folder: Path) -> int:
    try:
        return sum(1 for line in (folder / "checkpoints" / "epochs.jsonl").read_text().splitlines() if line.endswith("}"))
    except OSError:
        return 0


def assert_same_metrics(folder: Path, reference: MetricsRecord) -> None:
    metrics = MetricsRecord.model_validate_json((folder / "metrics.json").read_text())
    assert metrics.epochs_done == EPOCHS and metrics.accuracy == reference.accuracy


@pytest.mark.slow
def test_a_frozen_trial_is_killed_after_the_heartbeat_timeout_and_resumed(chaos_model, home, reference):
    run, _ = prepare_run(chaos_model, store=RunStore(home))
    assert mlci("launch", "--run", run.id, "--home", str(home)).returncode == 0
    trial = run.trial(0)
    wait_for(lambda: epochs_logged(trial) >= 1, "epoch 1")
    frozen = trial.state().pid
    os.kill(frozen, signal.SIGSTOP)  # alive, but no heartbeat any more (a hung host, a paused container)
    watcher = background("monitor", "--run", run.id, "--home", str(home), "--stale-after", "20")
    wait_for(lambda: trial.state().pid != frozen, "the frozen trial to be replaced", process=watcher)
    wait_for(lambda: trial.state().status == "succeeded", "the trial to finish", process=watcher)
    watcher.send_signal(signal.SIGINT)
    _, err = watcher.communicate(timeout=30)
    assert watcher.returncode == 0, err
    [restart] = trial.state().restarts
    assert restart.reason.startswith("no heartbeat for") and "(hung or frozen)" in restart.reason
    assert not os.path.exists(f"/proc/{frozen}") or _zombie(frozen)  # the frozen process was killed, not left
    assert f"run {run.id} trial 0 succeeded: accuracy" in err
    assert_same_as_reference(trial, reference)
    assert run.record().best_trial == 0  # no orchestrator held the run: the monitor updated best/


# ----------------------------------------------------------------------------- crash loops and verdicts (fast)


SELF_KILLING = '''
    """Dies in build_model: SIGKILL for the baseline's neighbours, exit code 1 otherwise."""
    import os, signal, sys
    from sklearn.neighbors import KNeighborsClassifier

    HPARAMS = {"n_neighbors": 60, "weights": "uniform"}


    def build_model(hp):
        if hp.get("die") == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if hp.get("die") == "exit":
            print("out of luck", flush=True)
            sys.exit(1)
        return KNeighborsClassifier(n_neighbors=hp["n_neighbors"], weights=hp["weights"])
'''


def test_a_crash_loop_stops_at_max_restarts_with_the_reason(tmp_path, home):
    model = write_model(tmp_path / "m", SELF_KILLING.replace('"weights": "uniform"}', '"weights": "uniform", "die": "kill"}'),
                        "dying.py", 'dataset = "digits"\nmax_restarts = 2\n[monitor]\nbackoff = 0.1\n')
    done = mlci("run", str(model), "--home", str(home), "-q", "--no-notify")
    assert done.returncode == 5, done.stderr
    assert "mlci: error: trial 0 failed: crash loop: gave up after 2 restarts; killed by SIGKILL" in done.stderr
    [run] = RunStore(home).runs()
    state = run.trial(0).state()
    assert state.status == "failed" and len(state.restarts) == 2
    assert [r.reason for r in state.restarts] == ["killed by SIGKILL"] * 2
    assert [r.exit_code for r in state.restarts] == [137] * 2 and state.exit_code == 137  # 128 + SIGKILL (9)
    assert state.reason.startswith("crash loop: gave up after 2 restarts; killed by SIGKILL; last log lines: trial 0:")


def test_a_later_trial_in_a_crash_loop_is_closed_and_the_run_moves_on_and_says_so(tmp_path, home):
    """Trial 0 trains; the ladder's next proposals die with exit code 1 (not diagnosed: restarted once)."""
    source = SELF_KILLING.replace('if hp.get("die") == "exit":',
                                  'if (hp["n_neighbors"], hp["weights"]) != (60, "uniform") or hp.get("die") == "exit":')
    model = write_model(tmp_path / "m", source, "dying.py",
                        'dataset = "digits"\nthreshold = 0.99\nmax_trials = 3\nmax_restarts = 1\n')
    done = mlci("run", str(model), "--home", str(home), "-q")
    assert done.returncode == 3, done.stderr
    [run] = RunStore(home).runs()
    assert run.trial(0).state().status == "succeeded"
    for trial in run.trials()[1:]:
        state = trial.state()
        assert state.status == "failed" and len(state.restarts) == 1 and state.restarts[0].exit_code == 1
        assert state.reason.startswith("crash loop: gave up after 1 restarts; exit code 1; last log lines:")
        assert "out of luck" in state.reason
    assert "moving on to the next proposal" in done.stderr
    [message] = run.outbox.glob("budget-exhausted*.json")
    assert "crash loop: gave up after 1 restarts" in json.loads(message.read_text())["text"]


def test_an_error_the_harness_diagnosed_is_not_restarted(tmp_path, home):
    source = KNN_SOURCE.replace("return KNeighborsClassifier", "raise ValueError('no such layer')\n        return K")
    model = write_model(tmp_path / "m", source, "broken.py", 'dataset = "digits"\n')
    done = mlci("run", str(model), "--home", str(home), "-q", "--no-notify")
    assert done.returncode == 5
    [run] = RunStore(home).runs()
    state = run.trial(0).state()
    assert state.restarts == [] and state.exit_code == 5
    assert "build_model raised ValueError: no such layer" in state.reason


def test_monitor_once_closes_a_dead_trial_out_of_restarts_and_exits_5(tmp_path, home):
    model = write_model(tmp_path / "m", SELF_KILLING.replace('"weights": "uniform"}', '"weights": "uniform", "die": "kill"}'),
                        "dying.py", 'dataset = "digits"\nmax_restarts = 0\n')
    run, _ = prepare_run(model, store=RunStore(home))
    assert mlci("launch", "--run", run.id, "--home", str(home)).returncode == 0
    pid = run.trial(0).state().pid
    wait_for(lambda: not os.path.exists(f"/proc/{pid}") or _zombie(pid), "the trial to kill itself", timeout=60)
    done = mlci("monitor", "--once", "--home", str(home))
    assert done.returncode == 5, done.stderr
    assert f"mlci: run {run.id} trial 0 failed: process vanished without an exit code (killed?)" in done.stderr
    assert done.stdout.strip() == "watched 1 running trial(s) in 1 pass(es): 0 restarted, 0 finished, 1 failed"
    assert run.trial(0).state().status == "failed"
    again = mlci("monitor", "--once", "--home", str(home))  # nothing running any more: nothing to do
    assert again.returncode == 0 and "watched 0 running trial(s)" in again.stdout


def test_restarts_back_off_doubling_after_the_first():
    assert [backoff_delay(n, 1.5) for n in range(1, 5)] == [0.0, 1.5, 3.0, 6.0]


def test_two_processes_settling_one_death_relaunch_it_once(tmp_path, home):
    """The second process to see a death adopts the first one's relaunch (compare-and-swap on trial.json)."""
    model = write_model(tmp_path / "m", SELF_KILLING, "dying.py", 'dataset = "digits"\n')
    run, config = prepare_run(model, store=RunStore(home))
    trial = run.new_trial()
    trial.write_hparams(HparamsRecord(trial=0, hparams={"die": "kill"}))
    runner = LocalRunner()
    handle = launch_trial(run, trial, runner, config)
    dead = runner.wait(handle)
    assert (dead.state, dead.exit_code, dead.signal, dead.reason) == ("killed", 137, 9, "killed by SIGKILL")
    first = settle(run, trial, runner, config, handle, dead)
    second = settle(run, trial, runner, config, handle, dead)
    assert first.action == "restarted" and second.action == "adopted" and second.handle == first.handle
    assert len(trial.state().restarts) == 1
    runner.wait(first.handle)


def test_monitor_of_an_unknown_run_is_a_usage_error(home):
    done = mlci("monitor", "--once", "--run", "nope", "--home", str(home))
    assert done.returncode == 2
    assert done.stderr.strip() == (f"mlci: error: run 'nope' not found in {home / 'runs'}; known runs: none; "
                                   "start one with `mlci run MODEL_FILE`")


def test_monitor_config_errors_name_the_key():
    with pytest.raises(ConfigError) as info:
        validate_config({"monitor": {"heartbeat_timeout": 0.5}}, "mlci.toml")
    assert str(info.value) == "mlci.toml: key 'monitor.heartbeat_timeout' = 0.5 is invalid; allowed: a number >= 2.0"


def test_an_optuna_trial_left_running_is_closed_and_proposed_again(tmp_path, home):
    import optuna

    model = write_model(tmp_path / "m", KNN_SOURCE, "knn.py", 'dataset = "digits"\n')
    run, _ = prepare_run(model, store=RunStore(home))
    training = run.trial(2)
    training.dir.mkdir(parents=True)
    # A process standing in for trial 2's training (its command line names the trial folder, as the harness's does).
    stand_in = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", str(training.dir.resolve())])
    try:
        training.write_state(training.state().model_copy(update={"status": "running", "runner": "local",
                                                                 "pid": stand_in.pid, "launched_at": time.time()}))
        space = {"n_neighbors": optuna.distributions.IntDistribution(1, 50)}
        storage = f"sqlite:///{run.study_path}"
        study = optuna.create_study(study_name=run.id, storage=storage, direction="maximize")
        abandoned = study.ask(space)
        abandoned.set_user_attr("mlci_trial", 1)  # its mlci trial is not running: the orchestrator died
        alive = study.ask(space)
        alive.set_user_attr("mlci_trial", 2)
        trained = study.ask(space)  # trial 0 trained, but its value was never told
        trained.set_user_attr("mlci_trial", 0)
        write_json(run.trial(0).hparams_path, HparamsRecord(trial=0, hparams={"n_neighbors": 5}))
        write_json(run.trial(0).metrics_path, MetricsRecord(trial=0, value=0.97))
        done = mlci("monitor", "--once", "--run", run.id, "--home", str(home))
        assert done.returncode == 0, done.stderr
        assert f"run {run.id}: 2 Optuna trial(s) left RUNNING by a stopped orchestrator closed" in done.stderr
        study = optuna.load_study(study_name=run.id, storage=storage)
        states = [t.state for t in study.get_trials()]
        assert states == [optuna.trial.TrialState.FAIL, optuna.trial.TrialState.RUNNING,
                          optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.WAITING]
        assert study.get_trials()[2].value == 0.97
        assert study.ask(space).params == abandoned.params  # proposed again, not lost
        assert training.state().status == "running"  # the live trial was left alone
    finally:
        stand_in.kill()
        stand_in.wait()


def test_monitor_leaves_a_proposal_of_the_optuna_strategy_alone(tmp_path, home):
    """Job 4 proposed a trial (the study trial is RUNNING, linked through hparams.json) that job 2 has not
    launched yet: job 6's `mlci monitor --once` must not close it and propose the same point again."""
    import optuna

    model = write_model(tmp_path / "m", KNN_SOURCE, "knn.py", 'dataset = "digits"\nstrategy = "optuna"\n'
                        'threshold = 0.999\n')
    created = mlci("fetch", str(model.parent), "--model", model.name, "--home", str(home), check=True)
    run_id = dict(line.split("=", 1) for line in created.stdout.split())["RUN_ID"]
    env = {"RUN_ID": run_id}
    mlci("launch", "--home", str(home), "--wait", env=env, check=True)
    assert "TRIAL=1" in mlci("tweak", "--home", str(home), env=env, check=True).stdout
    run = RunStore(home).run(run_id)
    link = run.trial(1).hparams().optuna_link()
    done = mlci("monitor", "--once", "--run", run_id, "--home", str(home))
    assert done.returncode == 0, done.stderr
    assert "left RUNNING" not in done.stderr
    study = optuna.load_study(study_name=link["study"], storage=link["storage"])
    assert study.trials[link["trial"]].state == optuna.trial.TrialState.RUNNING
    assert not any(t.state == optuna.trial.TrialState.WAITING for t in study.trials)  # nothing re-queued


# ----------------------------------------------------------------------------- Docker: docker kill, OOM


def container_of(trial) -> str | None:
    state = trial.state()
    return state.container_id if state.status == "running" else None


@pytest.mark.docker
@pytest.mark.slow
def test_docker_killed_container_is_seen_through_the_event_stream_and_resumed(tmp_path, home, docker_runs):
    model = write_model(tmp_path / "chaos", CHAOS_SOURCE, "digits_dense.py", CHAOS_CONFIG.replace('"local"', '"docker"'))
    straight = mlci("run", str(model), "--home", str(tmp_path / "straight"), "-q", "--no-notify", timeout=WAIT)
    docker_runs.append(RunStore(tmp_path / "straight").runs()[0].id)
    assert straight.returncode == 0, straight.stderr
    reference = RunStore(tmp_path / "straight").runs()[0].trial(0).metrics()

    run, _ = prepare_run(model, store=RunStore(home))
    docker_runs.append(run.id)
    assert mlci("launch", "--run", run.id, "--home", str(home)).returncode == 0
    trial = run.trial(0)
    # A poll this long would heal nothing within the test: the die events must be what wakes the monitor.
    watcher = background("monitor", "--run", run.id, "--home", str(home), "--poll", "60")
    rng = random.Random(5)
    epoch = 0
    killed = []
    for _ in range(2):
        epoch = rng.randint(epoch + 1, epoch + 2)
        wait_for(lambda: container_of(trial) and trained_to(trial, epoch), f"epoch {epoch}", process=watcher)
        container = container_of(trial)
        time.sleep(rng.uniform(0.0, 1.0))
        subprocess.run(["docker", "kill", container], check=True, capture_output=True)
        wait_for(lambda: container_of(trial) not in (None, container), "the restart", timeout=45, process=watcher)
        killed.append(trial.state().restarts[-1].resumed_from_epoch)
    wait_for(lambda: trial.state().status == "succeeded", "the trial to finish", process=watcher)
    watcher.send_signal(signal.SIGTERM)
    _, err = watcher.communicate(timeout=30)
    assert watcher.returncode == 0, err
    assert err.count(f"mlci: docker: container of run {run.id} trial 0: die (exit code 137)") == 2
    state = trial.state()
    assert state.runner == "docker" and [r.reason for r in state.restarts] == ["killed by SIGKILL"] * 2
    log = trial.log_path.read_text()
    for held in killed:
        assert held >= 1 and f"resuming from the checkpoint after epoch {held}\n" in log
    metrics = trial.metrics()
    assert metrics.epochs_done == EPOCHS and metrics.accuracy == reference.accuracy


OOM_SOURCE = '''
    """Asks for 1 GiB in build_model: more than its container may have."""
    import numpy as np
    from sklearn.neighbors import KNeighborsClassifier

    HPARAMS = {"n_neighbors": 3}


    def build_model(hp):
        hog = np.ones(2**27)  # 1 GiB of float64, touched
        return KNeighborsClassifier(n_neighbors=hp["n_neighbors"] + int(hog[0]) - 1)
'''


@pytest.mark.docker
def test_an_oom_killed_container_is_recorded_as_oom_and_the_loop_stops(tmp_path, home, docker_runs):
    model = write_model(tmp_path / "hog", OOM_SOURCE, "hog.py",
                        'dataset = "digits"\nrunner = "docker"\nmax_restarts = 1\n[resources]\nmemory = "256m"\n'
                        '[monitor]\nbackoff = 0.0\n')
    done = mlci("run", str(model), "--home", str(home), "-q", "--no-notify", timeout=WAIT)
    docker_runs.extend(r.id for r in RunStore(home).runs())
    assert done.returncode == 5, done.stderr
    [run] = RunStore(home).runs()
    state = run.trial(0).state()
    assert [(r.reason, r.exit_code) for r in state.restarts] == [("OOM-killed", 137)]
    assert state.reason.startswith("crash loop: gave up after 1 restarts; OOM-killed (memory limit)")
    assert "trial 0 failed: crash loop: gave up after 1 restarts; OOM-killed" in done.stderr
