"""The lock and the claims under a race: workers started at the same instant never train a trial twice and
never exceed the budget; `mlci worker` joins a run from the command line."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import KNN_SOURCE, ROOT, write_model
from pgserver import pg_url, postgres_password  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

WORKER = textwrap.dedent('''
    import json, os, sys, time
    from mlci.core.store import RunStore
    from mlci.orchestration.farm import work

    home, run_id, folder = sys.argv[1:4]
    run = RunStore(home).run(run_id)
    open(os.path.join(folder, f"ready-{os.getpid()}"), "w").close()
    while not os.path.exists(os.path.join(folder, "go")):
        time.sleep(0.002)
    result = work(run, heartbeat=1.0)
    print(json.dumps({"worker": result.worker, "trained": result.trained, "exit": result.exit_code}))
''')


def make_run(tmp_path: Path, home: Path, storage: str | None, max_trials: int):
    from mlci.core.store import RunStore
    from mlci.orchestration.runs import prepare_run

    model = write_model(tmp_path / "m", KNN_SOURCE, "knn.py", 'dataset = "digits"\nthreshold = 0.999\n')
    run, _ = prepare_run(model, store=RunStore(home),
                         overrides={"max_trials": max_trials, "storage": storage, "runner": "local"})
    return run


def start_together(tmp_path: Path, home: Path, run_id: str, workers: int) -> list[dict]:
    """Start `workers` processes, let them import everything, then release them at the same instant."""
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    gate = tmp_path / "gate"
    gate.mkdir()
    procs = [subprocess.Popen([sys.executable, str(script), str(home), run_id, str(gate)], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(workers)]
    deadline = time.monotonic() + 240
    while len(list(gate.glob("ready-*"))) < workers:
        assert time.monotonic() < deadline, "the workers did not start"
        assert all(p.poll() is None for p in procs), [p.communicate() for p in procs if p.poll() is not None]
        time.sleep(0.05)
    (gate / "go").touch()
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def check_exactly_once(run, results: list[dict], budget: int) -> None:
    from mlci.core.states import RunStatus, TrialStatus
    from mlci.orchestration.oracle import RunOracle

    trained = [n for result in results for n in result["trained"]]
    assert sorted(trained) == list(range(budget))  # every trial trained once, by one worker; none beyond the budget
    assert run.trial_numbers() == list(range(budget))
    assert all(t.status() == TrialStatus.SUCCEEDED and t.has_metrics() for t in run.trials())
    assert all(not t.state().restarts for t in run.trials())
    record = run.record()
    assert record.status == RunStatus.EXHAUSTED
    best = max(t.metrics().value for t in run.trials())
    assert record.best_value == best
    assert run.trial(record.best_trial).metrics().value == best
    assert {r["exit"] for r in results} == {3}  # every worker reports the run's verdict: budget spent
    claims = RunOracle(run).coordination.claims()
    assert sorted(c.trial for c in claims) == list(range(budget))
    assert all(c.done and c.takeovers == 0 for c in claims)


def test_eight_workers_at_the_same_instant_train_exactly_the_budget_of_five(tmp_path, home, pg_url):
    run = make_run(tmp_path, home, pg_url, max_trials=5)
    results = start_together(tmp_path, home, run.id, workers=8)
    check_exactly_once(run, results, budget=5)
    assert len({r["worker"] for r in results if r["trained"]}) >= 2  # the work was shared
    # the study lives on the server: Optuna's trials are there, not in the run folder
    import optuna

    study = optuna.load_study(study_name=f"mlci-{run.id}", storage=pg_url)
    assert len(study.trials) >= 4 and not run.study_path.exists()


def test_workers_on_one_machine_share_a_run_through_its_folder(tmp_path, home):
    run = make_run(tmp_path, home, None, max_trials=3)
    results = start_together(tmp_path, home, run.id, workers=3)
    check_exactly_once(run, results, budget=3)


def test_mlci_worker_joins_a_finished_run_and_reports_its_verdict(tmp_path, home, pg_url):
    run = make_run(tmp_path, home, pg_url, max_trials=1)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    first = subprocess.run([sys.executable, "-m", "mlci", "worker", "--run", run.id, "--home", str(home)],
                           capture_output=True, text=True, env=env, timeout=300)
    assert first.returncode == 3, first.stderr
    assert "trained 1 trial(s) [0]" in first.stderr and "max_trials (1) reached" in first.stderr
    again = subprocess.run([sys.executable, "-m", "mlci", "worker", "--run", run.id, "--home", str(home)],
                           capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 3 and "trained 0 trial(s) []" in again.stderr
