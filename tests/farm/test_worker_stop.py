"""A worker that is stopped (SIGTERM: Jenkins aborting the build, an agent going down for maintenance) stops its
trial with it and hands the trial back, so that another worker resumes it from its checkpoint at once, instead
of the trial training on unwatched while the others wait for its heartbeat to go stale."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT, write_model
from pgserver import pg_url, postgres_password  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

# A network wide enough that an epoch takes a noticeable time even on a fast machine (partial_fit: one
# checkpoint per epoch, so a second worker resumes after the last one).
SLOW_MLP = '''
    """A wide multi-layer perceptron trained epoch by epoch."""
    from sklearn.neural_network import MLPClassifier

    HPARAMS = {"epochs": 40, "units": 3072}


    def build_model(hp):
        return MLPClassifier(hidden_layer_sizes=(hp["units"],), random_state=0)
'''


def worker(home, run_id: str, name: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.Popen([sys.executable, "-m", "mlci", "worker", "--run", run_id, "--home", str(home),
                             "--name", name, "--heartbeat", "1", "--stale-after", "60"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat", "rb") as handle:
        return handle.read().split(b")")[-1].split()[0] != b"Z"


def test_a_sigtermed_worker_stops_its_trial_and_another_resumes_it_at_once(tmp_path, home, pg_url):
    from mlci.core.states import TrialStatus
    from mlci.core.store import RunStore
    from mlci.orchestration.lifecycle import epochs_logged
    from mlci.orchestration.oracle import RunOracle
    from mlci.orchestration.runs import prepare_run

    model = write_model(tmp_path / "m", SLOW_MLP, "mlp.py", 'dataset = "digits"\nthreshold = 0.999\n')
    run, _ = prepare_run(model, store=RunStore(home), overrides={"max_trials": 1, "storage": pg_url, "runner": "local",
                                                                 "workers": "fresh"})
    first = worker(home, run.id, "host-a")
    trial = None
    deadline = time.monotonic() + 300
    while trial is None or epochs_logged(trial) < 2:
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline, "trial 0 did not train two epochs"
        trial = run.trial(0) if run.trial_numbers() else None
        time.sleep(0.1)
    pid = trial.state().pid
    assert pid and alive(pid)
    first.send_signal(signal.SIGTERM)
    _, err = first.communicate(timeout=60)
    assert first.returncode == 130, err
    assert "trial 0: stopped with this worker (interrupted); pending again, to resume from epoch" in err

    # The trial stopped with its worker, and nobody holds it: the stale-after of 60 s is never waited for.
    assert not alive(pid)
    state = trial.state()
    assert state.status == TrialStatus.PENDING and state.pid is None
    [claim] = RunOracle(run).coordination.claims()
    assert claim.done and claim.worker.startswith("host-a:")
    stopped_at = epochs_logged(trial)
    assert stopped_at >= 2

    started = time.monotonic()
    second = worker(home, run.id, "host-b")
    _, err = second.communicate(timeout=600)
    assert second.returncode == 3, err  # the budget (one trial) is spent below the threshold
    assert time.monotonic() - started < 55, "the second worker waited for the first one's claim to go stale"
    assert "taking it over" not in err and "trained 1 trial(s) [0]" in err
    metrics = trial.metrics()
    assert trial.status() == TrialStatus.SUCCEEDED and metrics.epochs_done == 40
    assert metrics.resumed_from_epoch is not None and metrics.resumed_from_epoch >= 2
    assert "resuming from the checkpoint after epoch" in trial.log_path.read_text()
    [claim] = RunOracle(run).coordination.claims()
    assert claim.done and claim.worker.startswith("host-b:")


def test_a_trial_whose_worker_died_on_this_machine_is_followed_not_trained_twice(tmp_path, home, pg_url):
    """The worker is SIGKILLed but its trial's process lives on (its own session): the worker that takes the
    claim over finds that process on this machine and follows it, instead of starting the trial a second time."""
    from mlci.core.states import TrialStatus
    from mlci.core.store import RunStore
    from mlci.orchestration.lifecycle import epochs_logged
    from mlci.orchestration.runs import prepare_run

    model = write_model(tmp_path / "m", SLOW_MLP, "mlp.py", 'dataset = "digits"\nthreshold = 0.999\n')
    run, _ = prepare_run(model, store=RunStore(home), overrides={"max_trials": 1, "storage": pg_url, "runner": "local",
                                                                 "workers": "fresh"})
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    command = [sys.executable, "-m", "mlci", "worker", "--run", run.id, "--home", str(home), "--heartbeat", "0.5",
               "--stale-after", "2"]
    first = subprocess.Popen(command + ["--name", "host-a"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=env)
    deadline = time.monotonic() + 300
    while not run.trial_numbers() or epochs_logged(run.trial(0)) < 1:
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline, "trial 0 did not train an epoch"
        time.sleep(0.1)
    trial = run.trial(0)
    pid = trial.state().pid
    # The trial is held still until the second worker has taken its claim over: on a busy machine it could
    # otherwise end before that worker starts, and there would be nothing left to follow.
    os.killpg(pid, signal.SIGSTOP)
    try:
        first.kill()  # the worker only: the trial's process leads a session of its own and trains on
        first.communicate(timeout=60)
        assert alive(pid)
        second = subprocess.Popen(command + ["--name", "host-a"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, env=env)
        seen = []
        for line in second.stderr:
            seen.append(line)
            if "taking it over" in line:
                break
    finally:
        os.killpg(pid, signal.SIGCONT)
    _, rest = second.communicate(timeout=600)
    stderr = "".join(seen) + rest
    assert second.returncode == 3, stderr
    assert "trial 0: its worker's heartbeat stopped; taking it over" in stderr
    state = trial.state()
    assert state.status == TrialStatus.SUCCEEDED and state.pid == pid and not state.restarts
    assert trial.metrics().resumed_from_epoch is None  # trained once, by the process started first
