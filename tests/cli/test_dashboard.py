"""`mlci dashboard`: optuna-dashboard (the real package) serves the run's study on loopback."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request


from conftest import KNN_SOURCE, free_port, mlci, write_model
from skips import require_module
from mlci.core.store import RunStore


def knn_run(tmp_path, home, strategy: str):
    model = write_model(tmp_path / strategy, KNN_SOURCE, "digits_knn.py",
                        f'threshold = 0.999\nmax_trials = 2\ndataset = "digits"\nrunner = "local"\nstrategy = "{strategy}"\n')
    assert mlci("run", str(model), "--home", str(home), "-q", "--no-notify").returncode == 3
    return next(r for r in RunStore(home).runs() if r.record().config.strategy == strategy)


def test_dashboard_serves_the_runs_study_on_loopback(tmp_path, home):
    require_module("optuna_dashboard", "dashboard")
    run = knn_run(tmp_path, home, "optuna")
    printed = mlci("dashboard", "--run", run.id, "--home", str(home), "--port", "8123", "--command")
    assert printed.returncode == 0
    assert printed.stdout.strip().endswith(f"sqlite:///{run.study_path.resolve()} --host 127.0.0.1 --port 8123")
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "mlci", "dashboard", "--run", run.id, "--home", str(home),
                               "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=os.environ.copy(), start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        studies = None
        while time.monotonic() < deadline and studies is None:
            assert server.poll() is None, server.stderr.read()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=2) as answer:
                    studies = json.loads(answer.read())
            except OSError:
                time.sleep(0.5)
        assert studies is not None, "the dashboard did not answer in 120 s"
        [study] = studies["study_summaries"]
        assert study["study_name"] == f"mlci-{run.id}"
        with socket.socket() as probe:  # loopback only: not on the machine's other addresses
            probe.settimeout(1)
            outside = socket.gethostbyname(socket.gethostname())
            if not outside.startswith("127."):
                assert probe.connect_ex((outside, port)) != 0
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def test_dashboard_of_a_run_without_a_study_is_one_line(tmp_path, home):
    run = knn_run(tmp_path, home, "ladder")
    done = mlci("dashboard", "--run", run.id, "--home", str(home))
    assert done.returncode == 2
    assert done.stderr.startswith(f"mlci: error: run {run.id} has no study") and len(done.stderr.splitlines()) == 1
