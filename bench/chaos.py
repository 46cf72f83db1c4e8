"""Chaos benchmark: kill the orchestrator, the trial process and the container at random moments.

Runs seeded `mlci run`s of small Keras and scikit-learn models on the local and Docker runners while
killing (SIGKILL) one of: the orchestrator (`mlci run`, then started again as a person or Jenkins would),
the trial's process, the trial's container. Each run is compared with an uninterrupted run of the same
model: results identical (every trial's hyperparameters and metric, bit for bit), trials lost,
trials duplicated, and the seconds from each kill to training again. Prints a table, writes
bench/results/chaos.json.

    nice -n 10 python bench/chaos.py [--kills 50] [--per-run 4] [--seed 0] [--no-docker]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# bench/docker.py must not shadow the docker package: drop this script's folder from the path.
sys.path[:] = [str(ROOT / "src")] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from mlci.core.states import TrialStatus  # noqa: E402
from mlci.core.store import RunStore  # noqa: E402

CONFIG = '''
threshold = 0.999
max_trials = 2
dataset = "digits"
strategy = "ladder"
max_restarts = 100
runner = "{runner}"
'''
MODELS = {
    "keras": ("dense.py", '''
        """A tiny dense network for the 8x8 digits: a few short epochs, checkpointed by the harness."""
        import keras
        from keras import layers

        HPARAMS = {"units": 8, "learning_rate": 0.01, "epochs": 6, "batch_size": 8}


        def build_model(hp):
            model = keras.Sequential([keras.Input(shape=(8, 8, 1)), layers.Flatten(),
                                      layers.Dense(hp["units"], activation="relu"),
                                      layers.Dense(10, activation="softmax")])
            model.compile(optimizer=keras.optimizers.Adam(hp["learning_rate"]),
                          loss="sparse_categorical_crossentropy", metrics=["accuracy"])
            return model
    '''),
    "sklearn": ("sgd.py", '''
        """An incremental linear model (partial_fit per epoch, a checkpoint after each): slowed to be killable."""
        import time

        from sklearn.linear_model import SGDClassifier

        HPARAMS = {"alpha": 0.0001, "epochs": 10}


        class PacedSGD(SGDClassifier):
            def partial_fit(self, *args, **kwargs):
                time.sleep(0.4)
                return super().partial_fit(*args, **kwargs)


        def build_model(hp):
            return PacedSGD(alpha=hp["alpha"], random_state=0)
    '''),
}


def mlci_run(model: Path, home: Path, log) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mlci", "run", str(model), "--home", str(home), "--no-notify"],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)


def results_of(home: Path) -> tuple[str, list[dict]]:
    run = RunStore(home).runs()[0]
    trials = []
    for trial in run.trials():
        state = trial.state()
        metrics = trial.metrics() if trial.has_metrics() else None
        epochs = sum(1 for line in (trial.checkpoints / "epochs.jsonl").read_text().splitlines() if line.strip()) \
            if (trial.checkpoints / "epochs.jsonl").exists() else None
        trials.append({"trial": trial.number, "status": str(state.status), "hparams": trial.hparams().hparams,
                       "value": None if metrics is None else metrics.value,
                       "epochs_done": None if metrics is None else metrics.epochs_done,
                       "epochs_logged": epochs, "restarts": len(state.restarts)})
    return str(run.record().status), trials


def running_trial(home: Path):
    runs = RunStore(home).runs()
    if not runs:
        return None, None
    for trial in runs[0].trials():
        try:
            state = trial.state()
        except Exception:  # noqa: BLE001  a file being replaced this instant: look again next time
            continue
        if state.status == TrialStatus.RUNNING:
            return trial, state
    return None, None


def heartbeat_time(trial) -> float:
    try:
        return float(json.loads(trial.heartbeat_path.read_text())["time"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0


@dataclass
class Scenario:
    runner: str
    framework: str
    kills: list[dict] = field(default_factory=list)


def kill_trial_process(state, client) -> bool:
    if state.pid:
        try:
            os.killpg(state.pid, signal.SIGKILL)
            return True
        except (ProcessLookupError, PermissionError):
            return False
    if state.container_id and client is not None:
        try:  # the harness inside the container, killed from the host: the container's main process ends
            container = client.containers.get(state.container_id)
            top = container.top(ps_args="-eo pid,args")
            pids = [int(pid) for pid, command in top["Processes"]
                    if "mlci" in command and " train " in command and "logtee" not in command and "init" not in command]
            for pid in pids[:1]:
                os.kill(pid, signal.SIGKILL)
            return bool(pids)
        except Exception:  # noqa: BLE001  the container ended this instant
            return False
    return False


def kill_container(state, client) -> bool:
    if not state.container_id or client is None:
        return False
    try:
        client.containers.get(state.container_id).kill()
        return True
    except Exception:  # noqa: BLE001
        return False


def write_model(folder: Path, scenario: Scenario) -> Path:
    name, source = MODELS[scenario.framework]
    model = folder / "model" / name
    model.parent.mkdir(parents=True)
    model.write_text(textwrap.dedent(source).lstrip())
    (model.parent / "mlci.toml").write_text(CONFIG.format(runner=scenario.runner).lstrip())
    return model


def baseline(scenario: Scenario, folder: Path) -> dict:
    """The uninterrupted seeded run every chaos run of this scenario must reproduce."""
    model = write_model(folder, scenario)
    with open(folder / "baseline.log", "ab") as log:
        started = time.time()
        mlci_run(model, folder / "store", log).wait()
    status, trials = results_of(folder / "store")
    return {"status": status, "trials": trials, "seconds": round(time.time() - started, 1)}


def chaos_run(scenario: Scenario, folder: Path, kills: int, rng: random.Random, client, deadline: float,
              base: dict) -> dict:
    model = write_model(folder, scenario)
    chaos_home = folder / "chaos"
    base_status, base_trials, baseline_seconds = base["status"], base["trials"], base["seconds"]
    started = time.time()

    targets = ["orchestrator", "trial process"] + (["container"] if scenario.runner == "docker" else [])
    done_kills: list[dict] = []
    with open(folder / "chaos.log", "ab") as log:
        orchestrator = mlci_run(model, chaos_home, log)
        restarts_of_orchestrator = 0
        while True:
            if orchestrator.poll() is not None:
                break
            if len(done_kills) >= kills or time.time() > deadline:
                time.sleep(0.2)
                continue
            time.sleep(rng.uniform(0.5, 4.0))
            if orchestrator.poll() is not None:
                break
            trial, state = running_trial(chaos_home)
            target = rng.choice(targets) if trial is not None else "orchestrator"
            at = time.time()
            if target == "orchestrator":
                os.killpg(orchestrator.pid, signal.SIGKILL)
                orchestrator.wait()
                killed = True
            elif target == "trial process":
                killed = kill_trial_process(state, client)
            else:
                killed = kill_container(state, client)
            if not killed:
                continue
            record = {"target": target, "at": round(at - started, 3), "trial": trial.number if trial else None,
                      "epoch": _epochs(trial)}
            if target == "orchestrator":
                orchestrator = mlci_run(model, chaos_home, log)  # run the same command again
                restarts_of_orchestrator += 1
            record["to_training_again"] = _until_training(chaos_home, at, target, orchestrator)
            done_kills.append(record)
        orchestrator.wait()
    status, trials = results_of(chaos_home)
    base_by_number = {t["trial"]: t for t in base_trials}
    lost = sum(1 for t in base_trials if not any(c["trial"] == t["trial"] and c["status"] == t["status"]
                                                 for c in trials))
    duplicated = max(0, len(trials) - len(base_trials)) + sum(
        1 for t in trials if t["epochs_logged"] is not None and t["epochs_done"] is not None
        and t["epochs_logged"] > t["epochs_done"])
    identical = status == base_status and len(trials) == len(base_trials) and all(
        base_by_number.get(t["trial"], {}).get(key) == t[key] for t in trials for key in ("hparams", "value", "status"))
    return {"runner": scenario.runner, "framework": scenario.framework, "kills": done_kills,
            "identical": identical, "lost": lost, "duplicated": duplicated, "status": status,
            "baseline_status": base_status, "trials": trials, "baseline_trials": base_trials,
            "baseline_seconds": round(baseline_seconds, 1), "orchestrator_restarts": restarts_of_orchestrator}


def _epochs(trial) -> int | None:
    if trial is None:
        return None
    try:
        return sum(1 for line in (trial.checkpoints / "epochs.jsonl").read_text().splitlines() if line.strip())
    except OSError:
        return 0


def _until_training(home: Path, killed_at: float, target: str, orchestrator: subprocess.Popen,
                    timeout: float = 300.0) -> float | None:
    """Seconds from the kill until a harness beats again (for a killed trial: a relaunched one)."""
    end = time.time() + timeout
    while time.time() < end:
        trial, state = running_trial(home)
        if trial is not None:
            beat = heartbeat_time(trial)
            relaunched = target == "orchestrator" or (state.launched_at or 0) > killed_at
            if relaunched and beat > killed_at + 0.05:
                return round(beat - killed_at, 3)
        if orchestrator.poll() is not None:
            return None  # the run ended meanwhile: nothing to train again
        time.sleep(0.05)
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=int(os.environ.get("BENCH_KILLS", "50")))
    parser.add_argument("--per-run", type=int, default=5, help="kills in one run")
    parser.add_argument("--seed", type=int, default=0, help="seeds the kill moments and targets")
    parser.add_argument("--no-docker", action="store_true")
    parser.add_argument("--max-minutes", type=float, default=60.0, help="stop killing after this long")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    client = None
    runners = ["local"]
    if not args.no_docker:
        try:
            import docker

            client = docker.from_env(timeout=120)
            client.ping()
            runners.append("docker")
        except Exception as exc:  # noqa: BLE001
            print(f"chaos: no Docker engine ({type(exc).__name__}): local runner only", file=sys.stderr)
    scenarios = [(r, f) for r in runners for f in ("sklearn", "keras")]
    deadline = time.time() + args.max_minutes * 60
    results: list[dict] = []
    total = 0
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="mlci-chaos-") as tmp:
        index = 0
        baselines: dict[tuple[str, str], dict] = {}
        while total < args.kills and time.time() < deadline:
            runner, framework = scenarios[index % len(scenarios)]
            scenario = Scenario(runner, framework)
            if (runner, framework) not in baselines:
                baselines[runner, framework] = baseline(scenario, Path(tmp) / f"baseline-{runner}-{framework}")
            want = min(args.per_run, args.kills - total)
            row = chaos_run(scenario, Path(tmp) / f"run-{index}", want, rng, client, deadline,
                            baselines[runner, framework])
            results.append(row)
            total += len(row["kills"])
            index += 1
            print(f"run {index}: {runner}/{framework}: {len(row['kills'])} kills, identical={row['identical']}, "
                  f"lost={row['lost']}, duplicated={row['duplicated']}", file=sys.stderr)
    _report(results, time.time() - started, args)


def _report(results: list[dict], seconds: float, args) -> None:
    kills = [k for r in results for k in r["kills"]]
    table = Table(title=f"chaos: {len(kills)} kills in {len(results)} runs ({seconds / 60:.1f} min)")
    for column in ("runner", "framework", "runs", "kills (orch/proc/cont)", "identical", "lost", "duplicated",
                   "to training again: median s", "max s"):
        table.add_column(column)
    summary = []
    for runner, framework in sorted({(r["runner"], r["framework"]) for r in results}):
        rows = [r for r in results if (r["runner"], r["framework"]) == (runner, framework)]
        ks = [k for r in rows for k in r["kills"]]
        again = [k["to_training_again"] for k in ks if k["to_training_again"] is not None]
        by_target = {t: sum(1 for k in ks if k["target"] == t) for t in ("orchestrator", "trial process", "container")}
        line = {"runner": runner, "framework": framework, "runs": len(rows), "kills": len(ks), "by_target": by_target,
                "identical": sum(r["identical"] for r in rows), "lost": sum(r["lost"] for r in rows),
                "duplicated": sum(r["duplicated"] for r in rows),
                "to_training_again_median": round(statistics.median(again), 2) if again else None,
                "to_training_again_max": round(max(again), 2) if again else None}
        summary.append(line)
        table.add_row(runner, framework, str(len(rows)),
                      f"{len(ks)} ({by_target['orchestrator']}/{by_target['trial process']}/{by_target['container']})",
                      f"{line['identical']}/{len(rows)}", str(line["lost"]), str(line["duplicated"]),
                      _fmt(line["to_training_again_median"]), _fmt(line["to_training_again_max"]))
    Console().print(table)
    again = [k["to_training_again"] for k in kills if k["to_training_again"] is not None]
    totals = {"runs": len(results), "kills": len(kills), "identical": sum(r["identical"] for r in results),
              "lost": sum(r["lost"] for r in results), "duplicated": sum(r["duplicated"] for r in results),
              "to_training_again_median": round(statistics.median(again), 2) if again else None,
              "minutes": round(seconds / 60, 1)}
    print(f"runs identical to an uninterrupted seeded run: {totals['identical']}/{totals['runs']}; trials lost: "
          f"{totals['lost']}; duplicated: {totals['duplicated']}; kill -> training again: median "
          f"{_fmt(totals['to_training_again_median'])} s")
    target = ROOT / "bench" / "results" / "chaos.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"args": vars(args), "totals": totals, "summary": summary, "runs": results},
                                 indent=2) + "\n")
    print(f"wrote {target}")


def _fmt(value) -> str:
    return "—" if value is None else f"{value:.2f}"


if __name__ == "__main__":
    main()
