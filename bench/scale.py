"""A farm's scale: trials per minute and coordination overhead per trial with 1, 2, 4 and 8 workers on small
scikit-learn trials (one run through the PostgreSQL server of scripts/postgres-ready.sh), against Optuna's
own RDB ask/tell cost on the same server; and the seconds from a worker's death to its trial training again
under another worker. Prints a table and writes bench/results/scale.json.

Coordination overhead: the time a worker spends in the run's coordination (waiting for the advisory lock,
reading the live claims, claiming, releasing), per trial; the oracle's own decision (the Optuna proposal)
is not in it, and is shown beside it: the time the guard is held, per trial. Run with `nice -n 10 .venv/bin/python bench/scale.py` (password: PGPASSWORD, or the test
cluster's password file).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
PG_DIR = Path(os.environ.get("MLCI_PG_DIR", "/tmp/mlci-postgres"))
SERVER = f"postgresql://mlci@127.0.0.1:{os.environ.get('MLCI_PG_PORT', '54329')}"

MODEL = '''
"""k-nearest neighbours on the digits (a small trial)."""
import time
from sklearn.neighbors import KNeighborsClassifier

HPARAMS = {"n_neighbors": 30, "weights": "uniform"}
PAUSE = 0.0


def build_model(hp):
    time.sleep(PAUSE)
    return KNeighborsClassifier(n_neighbors=hp["n_neighbors"], weights=hp["weights"])
'''

WORKER = textwrap.dedent('''
    import json, os, sys, time
    from mlci.core.store import RunStore
    from mlci.orchestration import coordination as c
    from mlci.orchestration.farm import work

    spent = {"seconds": 0.0, "held": 0.0}

    def timed(method):
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                spent["seconds"] += time.perf_counter() - started
        return wrapper

    for name in ("live", "claim", "release"):
        setattr(c.PostgresCoordination, name, timed(getattr(c.PostgresCoordination, name)))
    guard = c.PostgresCoordination.guard

    def timed_guard(self):
        import contextlib
        @contextlib.contextmanager
        def wrapped():
            started = time.perf_counter()
            with guard(self):
                got = time.perf_counter()
                spent["seconds"] += got - started  # waiting for the lock
                try:
                    yield
                finally:
                    spent["held"] += time.perf_counter() - got  # deciding (the Optuna proposal included)
        return wrapped()

    c.PostgresCoordination.guard = timed_guard
    home, run_id, gate = sys.argv[1:4]
    run = RunStore(home).run(run_id)
    open(os.path.join(gate, f"ready-{os.getpid()}"), "w").close()
    while not os.path.exists(os.path.join(gate, "go")):
        time.sleep(0.002)
    result = work(run, heartbeat=1.0)
    print(json.dumps({"trained": result.trained, "coordination_s": spent["seconds"], "held_s": spent["held"]}))
''')


def password_env() -> dict:
    env = dict(os.environ)
    if "PGPASSWORD" not in env and (PG_DIR / "password").exists():
        env["PGPASSWORD"] = (PG_DIR / "password").read_text().strip()
    os.environ.update(env)
    env["PYTHONPATH"] = str(ROOT / "src")
    return env


def database() -> str:
    import psycopg

    name = f"mlci_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{SERVER}/mlci", autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    return f"{SERVER}/{name}"


def drop(url: str) -> None:
    import psycopg

    with psycopg.connect(f"{SERVER}/mlci", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)")


def new_run(folder: Path, storage: str, trials: int, pause: float = 0.0):
    from mlci.core.store import RunStore
    from mlci.orchestration.runs import prepare_run

    folder.mkdir(parents=True, exist_ok=True)
    model = folder / "knn.py"
    model.write_text(MODEL.replace("PAUSE = 0.0", f"PAUSE = {pause}"))
    (folder / "mlci.toml").write_text('dataset = "digits"\nthreshold = 0.999\nrunner = "local"\n')
    run, _ = prepare_run(model, store=RunStore(folder / "store"), overrides={"max_trials": trials, "storage": storage})
    return run


def farm(workers: int, trials: int, env: dict) -> dict:
    url = database()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            run = new_run(Path(tmp) / "m", url, trials)
            script, gate = Path(tmp) / "worker.py", Path(tmp) / "gate"
            script.write_text(WORKER)
            gate.mkdir()
            procs = [subprocess.Popen([sys.executable, str(script), str(run.store.home), run.id, str(gate)], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(workers)]
            while len(list(gate.glob("ready-*"))) < workers:
                time.sleep(0.05)
            started = time.perf_counter()
            (gate / "go").touch()
            results = []
            for proc in procs:
                out, err = proc.communicate()
                if proc.returncode not in (0, 3):
                    raise SystemExit(f"worker failed: {err[-2000:]}")
                results.append(json.loads(out.strip().splitlines()[-1]))
            seconds = time.perf_counter() - started
    finally:
        drop(url)
    done = sum(len(r["trained"]) for r in results)
    assert sorted(n for r in results for n in r["trained"]) == list(range(trials)), results
    return {"workers": workers, "trials": done, "seconds": round(seconds, 2),
            "trials_per_minute": round(60 * done / seconds, 2),
            "coordination_ms_per_trial": round(1000 * sum(r["coordination_s"] for r in results) / done, 1),
            "guard_held_ms_per_trial": round(1000 * sum(r.get("held_s", 0.0) for r in results) / done, 1)}


def optuna_ask_tell(trials: int) -> dict:
    """Optuna's own cost on the same server: ask + tell of a trivial objective, per trial."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = database()
    try:
        study = optuna.create_study(storage=url, study_name="bench", direction="maximize")
        times = []
        for _ in range(trials):
            started = time.perf_counter()
            trial = study.ask()
            study.tell(trial, trial.suggest_int("n_neighbors", 1, 60) / 60)
            times.append(time.perf_counter() - started)
    finally:
        drop(url)
    return {"trials": trials, "ask_tell_ms_median": round(1000 * statistics.median(times), 1)}


def death_to_training_again(env: dict) -> dict:
    """A worker and its trial are SIGKILLed mid-trial (a host lost); a second worker waits for the claim to
    go stale (heartbeat 1 s, stale after 3 s) and relaunches the trial: seconds from the death to the relaunch."""
    url = database()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            run = new_run(Path(tmp) / "m", url, 1, pause=30.0)
            command = [sys.executable, "-m", "mlci", "worker", "--run", run.id, "--home", str(run.store.home),
                       "--heartbeat", "1"]
            first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
            while not (run.trial_numbers() and run.trial(0).state_path.exists() and run.trial(0).state().pid):
                time.sleep(0.05)
            trial_pid = run.trial(0).state().pid
            second = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(2.0)
            os.killpg(first.pid, signal.SIGKILL)
            os.kill(trial_pid, signal.SIGKILL)
            died = time.time()
            first.wait()
            # The restart is recorded just before the relaunch writes its time: wait for that time, not the record.
            while not (run.trial(0).state().restarts and (run.trial(0).state().launched_at or 0) > died):
                time.sleep(0.05)
            relaunched = run.trial(0).state().launched_at
            second.wait()
    finally:
        drop(url)
    return {"seconds_to_training_again": round(relaunched - died, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2,4,8")
    parser.add_argument("--trials", type=int, default=8)
    args = parser.parse_args()
    env = password_env()
    rows = [farm(int(n), args.trials, env) for n in args.workers.split(",")]
    baseline = optuna_ask_tell(50)
    takeover = death_to_training_again(env)
    table = Table(title=f"bench/scale.py: {args.trials} scikit-learn trials, one run on PostgreSQL")
    for column in ("workers", "trials", "seconds", "trials/min", "coordination ms/trial", "guard held ms/trial"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(str(row["workers"]), str(row["trials"]), f"{row['seconds']:.1f}", f"{row['trials_per_minute']:.1f}",
                      f"{row['coordination_ms_per_trial']:.1f}", f"{row['guard_held_ms_per_trial']:.1f}")
    console = Console()
    console.print(table)
    console.print(f"Optuna RDB ask+tell on the same server: {baseline['ask_tell_ms_median']:.1f} ms per trial (median of 50)")
    console.print(f"worker killed mid-trial -> trial training again under another worker: "
                  f"{takeover['seconds_to_training_again']:.1f} s (heartbeat 1 s, stale after 3 s)")
    out = ROOT / "bench" / "results" / "scale.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"farm": rows, "optuna_ask_tell": baseline, "takeover": takeover,
                               "cpus": os.cpu_count(), "load": os.getloadavg()[0]}, indent=2) + "\n")
    console.print(f"written {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
