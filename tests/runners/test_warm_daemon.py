"""Warm workers kept between runs (`workers = "daemon"`), on real processes and a real unix socket.

A daemon serves one run after another without importing again, its trials equal a fresh process's, it is never
shared with a run that would import differently, a dead one is replaced, and an idle one ends by itself.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path

import joblib
import numpy as np
import pytest

from mlci.core.errors import RunnerError
from mlci.core.store import RunStore
from mlci.orchestration.pipeline import run_pipeline
from mlci.runners import LocalRunner, get_runner
from mlci.runners import daemon as daemon_module
from mlci.runners.daemon import daemons, key, runtime_dir, stop_all
from mlci.runners.warm import WarmRunner
from runners.test_warm import _wait, sgd_model, spec, trained


@pytest.fixture
def sockets(monkeypatch):
    """A runtime folder of this test's own (short: a socket path has at most 107 characters); its daemons end
    with the test."""
    folder = tempfile.mkdtemp(prefix="mlci-rt-", dir="/tmp")
    monkeypatch.setenv("MLCI_RUNTIME_DIR", folder)
    yield Path(folder)
    for info in stop_all():
        _wait(lambda: not Path(f"/proc/{info['pid']}").exists() or _zombie(info["pid"]), "the daemon's end", 30)
    shutil.rmtree(folder, ignore_errors=True)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists() and not _zombie(pid)


def test_a_second_run_forks_from_the_first_runs_worker_and_trains_as_a_fresh_process(tmp_path, sockets):
    model = sgd_model(tmp_path / "m")
    fresh = trained(LocalRunner(), spec(model, tmp_path / "fresh", "sklearn", seed=3))
    first = WarmRunner(daemon=True)
    trained(first, spec(model, tmp_path / "other", "sklearn", seed=11, alpha=0.01))
    pid = first.workers["sklearn"].pid
    assert not first.workers["sklearn"].reused and first.workers["sklearn"].import_seconds > 0
    first.close()  # the run ends: its worker stays
    assert _alive(pid)
    second = WarmRunner(daemon=True)
    again = trained(second, spec(model, tmp_path / "warm", "sklearn", seed=3))
    assert second.workers["sklearn"].pid == pid and second.workers["sklearn"].reused
    second.close()
    assert again["value"] == fresh["value"] and again["history"] == fresh["history"]
    ours, theirs = joblib.load(tmp_path / "warm" / "model.joblib"), joblib.load(tmp_path / "fresh" / "model.joblib")
    assert np.array_equal(ours.coef_, theirs.coef_) and ours.eta0 == theirs.eta0
    assert [d["pid"] for d in daemons()] == [pid]
    assert (sockets.stat().st_mode & 0o777) == 0o700


def test_runs_that_start_together_share_one_daemon(tmp_path, sockets):
    runners = [WarmRunner(daemon=True) for _ in range(3)]
    threads = [threading.Thread(target=runner.warm_up, args=("sklearn",)) for runner in runners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for runner in runners:
        runner.workers["sklearn"].wait_ready()
    assert len({runner.workers["sklearn"].pid for runner in runners}) == 1
    for runner in runners:
        runner.close()


def test_the_key_changes_with_what_the_framework_reads_as_it_imports_and_with_mlcis_own_files(tmp_path):
    environ = {"HOME": "/root", "BUILD_NUMBER": "7"}
    assert key("keras", environ) == key("keras", {**environ, "BUILD_NUMBER": "8"})  # a build's own variables
    assert key("keras", environ) != key("keras", {**environ, "TF_ENABLE_ONEDNN_OPTS": "1"})
    assert key("keras", environ) != key("keras", {**environ, "KERAS_BACKEND": "jax"})
    assert key("keras", environ) != key("sklearn", environ)
    source = Path(daemon_module.__file__)
    before = key("keras", environ)
    info = source.stat()
    os.utime(source, ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000_000))  # an edited checkout
    try:
        assert key("keras", environ) != before
    finally:
        os.utime(source, ns=(info.st_atime_ns, info.st_mtime_ns))


def test_a_run_with_other_import_variables_gets_its_own_daemon(tmp_path, sockets, monkeypatch):
    model = sgd_model(tmp_path / "m")
    first = WarmRunner(daemon=True)
    trained(first, spec(model, tmp_path / "a", "sklearn"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    second = WarmRunner(daemon=True)
    trained(second, spec(model, tmp_path / "b", "sklearn"))
    assert first.workers["sklearn"].pid != second.workers["sklearn"].pid
    assert not second.workers["sklearn"].reused
    first.close()
    second.close()
    assert len(daemons()) == 2


def test_a_killed_daemon_is_replaced_and_a_trial_it_forked_goes_on(tmp_path, sockets):
    model = sgd_model(tmp_path / "m")
    runner = WarmRunner(daemon=True)
    running = spec(model, tmp_path / "running", "sklearn", epochs=4, epoch_seconds=0.3)
    handle = runner.start(running)
    dead = runner.workers["sklearn"].pid
    os.kill(dead, signal.SIGKILL)
    _wait(lambda: not _alive(dead), "the daemon's death")
    trained(runner, spec(model, tmp_path / "next", "sklearn"))  # a new daemon, over the dead one's socket
    assert runner.workers["sklearn"].pid != dead
    runner.wait(handle, timeout=120)
    assert json.loads((running.trial_dir / "metrics.json").read_text())["epochs_done"] == 4
    runner.close()


def test_an_idle_daemon_ends_by_itself_and_takes_its_socket_away(tmp_path, sockets):
    runner = WarmRunner(daemon=True, idle_minutes=0.02)  # 1.2 s
    trained(runner, spec(sgd_model(tmp_path / "m"), tmp_path / "t", "sklearn"))
    pid, path = runner.workers["sklearn"].pid, runner.workers["sklearn"].socket_path
    time.sleep(2.0)
    assert _alive(pid)  # a connected run keeps it, however long
    runner.close()
    _wait(lambda: not _alive(pid), "the idle daemon's end", 30)
    assert not path.exists() and daemons() == []


def test_a_folder_others_can_enter_is_refused_with_a_hint(monkeypatch, tmp_path):
    folder = tmp_path / "open"
    folder.mkdir(mode=0o777)
    folder.chmod(0o777)
    monkeypatch.setenv("MLCI_RUNTIME_DIR", str(folder))
    with pytest.raises(RunnerError) as caught:
        runtime_dir()
    assert "is not a folder only you can enter" in caught.value.message and "mode 777" in caught.value.message
    assert "MLCI_RUNTIME_DIR" in caught.value.hint


def test_mlci_run_with_workers_daemon_twice_imports_once(tmp_path, home, sockets):
    model = sgd_model(tmp_path / "m", 'dataset = "digits"\nthreshold = 1.0\nmax_trials = 2\nworkers = "daemon"\n'
                                      'strategy = "random"\n')
    first = run_pipeline(model, store=RunStore(home), notify_outcome=False, commit="a" * 40)
    (kept,) = daemons()
    second = run_pipeline(model, store=RunStore(home), notify_outcome=False, commit="b" * 40)  # another run
    assert first.run.id != second.run.id
    pids = {trial.state().pid for result in (first, second) for trial in result.run.trials()}
    assert len(pids) == 4 and all(t.state().runner == "warm" for t in second.run.trials())
    assert daemons() == [{**kept, "rss": daemons()[0]["rss"]}]  # the same one served both runs
    assert kept["framework"] == "sklearn"
    assert type(get_runner("local", workers="daemon")) is WarmRunner and get_runner("local", workers="daemon").daemon


def test_mlci_daemon_lists_and_stops_the_kept_workers(tmp_path, sockets):
    from click.testing import CliRunner

    from mlci.cli import main

    runner = WarmRunner(daemon=True)
    trained(runner, spec(sgd_model(tmp_path / "m"), tmp_path / "t", "sklearn"))
    runner.close()
    assert "stays for the next run" in runner.kept()[0] and "mlci daemon --stop" in runner.kept()[0]
    pid = runner._closed["sklearn"].pid
    listed = CliRunner().invoke(main, ["daemon", "--json"])
    assert listed.exit_code == 0 and json.loads(listed.output)["pid"] == pid
    stopped = CliRunner().invoke(main, ["daemon", "--stop"])
    assert stopped.exit_code == 0 and f"stopped: sklearn  pid {pid}" in stopped.output
    _wait(lambda: not _alive(pid), "the stopped daemon's end", 30)
    assert "no warm workers kept between runs" in CliRunner().invoke(main, ["daemon"]).output


def test_mlci_run_workers_daemon_on_the_command_line_keeps_the_worker_and_says_so(tmp_path, sockets):
    from click.testing import CliRunner

    from mlci.cli import main

    model = sgd_model(tmp_path / "m", 'dataset = "digits"\nthreshold = 0.5\nmax_trials = 1\n')
    done = CliRunner().invoke(main, ["run", str(model), "--home", str(tmp_path / "store"), "--workers", "daemon",
                                     "--no-notify", "-q"])
    assert done.exit_code == 0, done.output
    (kept,) = daemons()
    assert f"the warm sklearn worker (pid {kept['pid']}) stays for the next run" in done.output


def test_a_daemons_trial_leaking_past_the_memory_limit_is_ended_and_restarted_not_lost(tmp_path, home, sockets):
    from runners.test_warm import SGD_SOURCE

    marker = tmp_path / "leaked"
    model = sgd_model(tmp_path / "m", source=SGD_SOURCE.replace('"leak_mb": 0, "leak_marker": ""',
                                                                f'"leak_mb": 800, "leak_marker": "{marker}"'),
                      config='dataset = "digits"\nthreshold = 0.1\nmax_trials = 1\nmax_restarts = 2\n'
                             'strategy = "ladder"\nworkers = "daemon"\n[resources]\nmemory = "600m"\n'
                             '[monitor]\nbackoff = 0.0\n')
    result = run_pipeline(model, store=RunStore(home), notify_outcome=False)
    state = result.run.trial(0).state()
    assert marker.exists() and state.status == "succeeded" and len(state.restarts) == 1
    assert state.restarts[0].reason == "OOM-killed" and state.restarts[0].exit_code == 137
    assert "mlci warm worker: trial process grew to " in result.run.trial(0).log_path.read_text()
    (kept,) = daemons()  # the daemon ended the trial, not itself
    assert _alive(kept["pid"])


def test_a_socket_whose_listener_closes_before_ready_is_replaced_by_a_new_daemon(tmp_path, sockets):
    """A daemon killed just after a fork leaves its listening socket open in the new trial for a moment: a run
    that connects then is reset before "ready", and starts a daemon of its own instead of failing."""
    import socket

    from mlci.runners.daemon import Place

    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(Place("sklearn").socket))
    stale.listen(8)  # accepts into its backlog, never answers
    closer = threading.Timer(0.5, stale.close)
    closer.start()
    runner = WarmRunner(daemon=True)
    trained(runner, spec(sgd_model(tmp_path / "m"), tmp_path / "t", "sklearn"))
    assert _alive(runner.workers["sklearn"].pid) and not runner.workers["sklearn"].reused
    runner.close()
