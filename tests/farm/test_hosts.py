"""Three worker hosts, one run: each host is a network namespace with its own address on 10.231.0.0/24,
reaching PostgreSQL over its veth link (the bridge mlci-farm0 of scripts/postgres-ready.sh). Then a host
dies in the middle of a Keras trial (every process in it killed, its link deleted) and another host takes
the trial over from its checkpoint on the shared run store."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, write_model
from skips import unavailable
from farm.test_race import check_exactly_once, make_run
from orchestration.test_monitor import (CHAOS_CONFIG, CHAOS_SOURCE, _absolute_pythonpath,  # noqa: F401  (fixtures)
                                        assert_same_as_reference, reference, trained_to, wait_for)
from pgserver import pg_url, postgres_password  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

BRIDGE, GATEWAY = "mlci-farm0", "10.231.0.1"


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


class Host:
    """A network namespace with a veth link to the bridge and its own address: one machine of the farm."""

    def __init__(self, index: int):
        tag = os.getpid() % 100000
        self.name, self.link = f"mlci{tag}h{index}", f"m{tag}h{index}"
        self.address = f"10.231.0.{100 + (tag % 50) * 3 + index}"
        ip("netns", "add", self.name)
        ip("link", "add", self.link, "type", "veth", "peer", "name", "eth0", "netns", self.name)
        ip("link", "set", self.link, "master", BRIDGE, "up")
        ip("-n", self.name, "addr", "add", f"{self.address}/24", "dev", "eth0")
        ip("-n", self.name, "link", "set", "eth0", "up")
        ip("-n", self.name, "link", "set", "lo", "up")

    def start(self, *args: str, env: dict) -> subprocess.Popen:
        return subprocess.Popen(["ip", "netns", "exec", self.name, *args], env=env, cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def pids(self) -> list[int]:
        return [int(p) for p in ip("netns", "pids", self.name, check=False).stdout.split()]

    def kill(self) -> None:
        """The host dies: every process in it ends at once, and its link is cut."""
        for _ in range(5):
            pids = self.pids()
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.2)
        ip("link", "del", self.link, check=False)

    def remove(self) -> None:
        self.kill()
        ip("netns", "del", self.name, check=False)


@pytest.fixture
def hosts():
    if os.geteuid() != 0 or not shutil.which("ip"):
        unavailable("network namespaces need root and iproute2", "run the tests as root with iproute2 installed")
    if ip("link", "show", BRIDGE, check=False).returncode != 0:
        unavailable(f"no bridge {BRIDGE}", "scripts/postgres-ready.sh creates it (make test runs it)")
    made: list[Host] = []
    try:
        for index in range(1, 4):
            made.append(Host(index))
        yield made
    finally:
        for host in made:
            host.remove()


def farm_url(pg_url: str) -> str:
    """The same database as the hosts see it: over their links to the bridge, not the loopback."""
    return pg_url.replace("@127.0.0.1:", f"@{GATEWAY}:")


def start_workers(hosts: list[Host], home: Path, run_id: str) -> list[subprocess.Popen]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return [host.start(sys.executable, "-m", "mlci", "worker", "--run", run_id, "--home", str(home),
                       "--name", host.name, "--heartbeat", "1", env=env) for host in hosts]


def trained_by(stderr: str) -> list[int]:
    found = re.search(r"trained \d+ trial\(s\) \[([\d, ]*)\]", stderr)
    assert found, stderr[-2000:]
    return [int(n) for n in found.group(1).replace(",", " ").split()]


def test_three_hosts_share_a_run_and_a_lost_host_trial_resumes_elsewhere(tmp_path, home, pg_url, hosts, reference):
    # 1. three hosts, one scikit-learn run of 6 trials: each trial trained once, the budget held, the best right
    run = make_run(tmp_path, home, farm_url(pg_url), max_trials=6)
    workers = start_workers(hosts, home, run.id)
    results = []
    for host, proc in zip(hosts, workers):
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 3, err[-3000:]
        results.append({"worker": host.name, "trained": trained_by(err), "exit": proc.returncode})
    check_exactly_once(run, results, budget=6)
    from mlci.orchestration.oracle import RunOracle

    assert {c.host for c in RunOracle(run).coordination.claims()} <= {h.name for h in hosts}

    # 2. a Keras trial; its host dies after epoch 2: another host resumes it from the checkpoint
    from mlci.core.store import RunStore
    from mlci.orchestration.runs import prepare_run

    model = write_model(tmp_path / "chaos", CHAOS_SOURCE, "digits_dense.py", CHAOS_CONFIG)
    keras_home = tmp_path / "keras-store"
    keras_run, _ = prepare_run(model, store=RunStore(keras_home), overrides={"storage": farm_url(pg_url)})
    workers = start_workers(hosts, keras_home, keras_run.id)
    coordination = RunOracle(keras_run).coordination
    wait_for(lambda: keras_run.trial_numbers() and keras_run.trial(0).state_path.exists()
             and trained_to(keras_run.trial(0), 2), "trial 0 to train 2 epochs")
    holder = next(c.host for c in coordination.claims() if c.trial == 0)
    lost = next(h for h in hosts if h.name == holder)
    died = time.monotonic()
    lost.kill()
    survivors = [(h, p) for h, p in zip(hosts, workers) if h is not lost]
    for host, proc in survivors:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
    trial = keras_run.trial(0)
    state = trial.state()
    assert len(state.restarts) == 1 and state.restarts[0].resumed_from_epoch >= 2
    assert "host was lost" in state.restarts[0].reason
    claim = next(c for c in coordination.claims() if c.trial == 0)
    assert claim.takeovers == 1 and claim.host != lost.name and claim.done
    assert_same_as_reference(trial, reference)
    assert keras_run.record().status == "met" and keras_run.record().best_value == trial.metrics().value
    print(f"host lost to trial finished elsewhere: {time.monotonic() - died:.1f}s")
