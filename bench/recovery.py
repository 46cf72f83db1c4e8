"""Benchmark of the monitor: how fast a killed trial is seen, how fast it trains again, how much work it redoes.

A seeded Keras trial is killed several times; the medians are compared with Docker's own `--restart on-failure`
(which restarts a plain script from zero). Prints a table, writes bench/results/recovery.json.
"""
from __future__ import annotations

import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
# bench/docker.py (the images' benchmark) must not shadow the docker package: drop this script's folder.
sys.path[:] = [str(ROOT / "src"), str(ROOT / "tests")] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

from conftest import KERAS_DIGITS_SOURCE, write_model  # noqa: E402
from mlci.orchestration.lifecycle import epochs_logged, heartbeat, launch_trial  # noqa: E402
from mlci.orchestration.monitor import Monitor  # noqa: E402
from mlci.orchestration.oracle import RunOracle  # noqa: E402
from mlci.orchestration.runs import prepare_run  # noqa: E402
from mlci.runners import get_runner  # noqa: E402
from mlci.core.store import RunStore  # noqa: E402

KILLS = int(os.environ.get("BENCH_KILLS", "5"))
EPOCHS = 2 * KILLS + 3
SOURCE = KERAS_DIGITS_SOURCE.replace('"epochs": 3, "batch_size": 32', f'"epochs": {EPOCHS}, "batch_size": 8')


class Timings:
    """The monitor's events, stamped: when each death was seen and when the trial was relaunched."""

    def __init__(self) -> None:
        self.died: list[float] = []
        self.relaunched: list[tuple[float, str, int | None]] = []
        self.changed = threading.Condition()

    def notice(self, text: str) -> None:
        pass

    def trial_died(self, trial, status, detected_at) -> None:
        self.died.append(detected_at)

    def trial_restarted(self, trial, restart, handle) -> None:
        with self.changed:
            self.relaunched.append((time.time(), handle, restart.resumed_from_epoch))
            self.changed.notify_all()

    def trial_finished(self, trial, metrics, state) -> None:
        pass


def _wait(condition, timeout: float = 300.0, step: float = 0.005):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(step)
    raise TimeoutError("the trial did not get there in time")


def _kill(runner_name: str, handle: str) -> None:
    if runner_name == "local":
        os.kill(int(handle), signal.SIGKILL)
    else:
        subprocess.run(["docker", "kill", handle], check=True, capture_output=True)


def _first_beat_after(trial, since: float, pid: int | None) -> float:
    """When the new attempt's heartbeat first appeared: its training loop is running again."""
    def fresh():
        beat = heartbeat(trial)
        if beat.get("time", 0) >= since and (pid is None or beat.get("pid") == pid):
            return beat["time"]
        return None

    return _wait(fresh)


def measure_mlci(runner_name: str, folder: Path) -> dict:
    model = write_model(folder / "model", SOURCE, "digits_dense.py",
                        f'dataset = "digits"\nrunner = "{runner_name}"\nmax_restarts = {KILLS}\n'
                        "[monitor]\nbackoff = 0.0\n")
    run, config = prepare_run(model, store=RunStore(folder / "store"))
    trial = RunOracle(run).ask().trial
    runner = get_runner(runner_name)
    timings = Timings()
    watcher = Monitor(run.store, run.id, events=timings, poll=1.0)
    thread = threading.Thread(target=watcher.watch, name="bench-monitor", daemon=True)
    launched = time.time()
    handle = launch_trial(run, trial, runner, config)
    cold = _first_beat_after(trial, launched, int(handle) if handle.isdigit() else None) - launched
    thread.start()
    rng = random.Random(0)
    rows = []
    for kill in range(KILLS):
        start_epochs = epochs_logged(trial)
        _wait(lambda: epochs_logged(trial) >= start_epochs + 1)
        ends = [time.time()]
        target = rng.uniform(0.1, 0.9)
        seen = epochs_logged(trial)
        while len(ends) < 2:  # time one epoch, then kill a random fraction into the next
            if epochs_logged(trial) > seen:
                ends.append(time.time())
            time.sleep(0.005)
        epoch_seconds = ends[1] - ends[0]
        time.sleep(target * epoch_seconds)
        done_at_kill = epochs_logged(trial)
        fraction = min((time.time() - ends[1]) / epoch_seconds, 1.0)
        with timings.changed:
            before = len(timings.relaunched)
            killed_at = time.time()
            _kill(runner_name, trial.state().pid and str(trial.state().pid) or trial.state().container_id)
            timings.changed.wait_for(lambda: len(timings.relaunched) > before, timeout=120)
        relaunched_at, new_handle, resumed = timings.relaunched[-1]
        running_at = _first_beat_after(trial, timings.died[-1], int(new_handle) if new_handle.isdigit() else None)
        rows.append({"kill": kill + 1, "epochs_done_at_kill": done_at_kill, "resumed_from_epoch": resumed,
                     "death_to_detection_s": timings.died[-1] - killed_at,
                     "detection_to_relaunch_s": relaunched_at - timings.died[-1],
                     "detection_to_training_s": running_at - timings.died[-1],
                     "whole_epochs_lost": done_at_kill - (resumed or 0),
                     "epochs_redone": done_at_kill - (resumed or 0) + fraction})
    _wait(lambda: trial.state().status in ("succeeded", "failed"), timeout=600)
    watcher.stop()
    thread.join(timeout=10)
    return summarize(f"mlci monitor, {runner_name} runner", rows, cold, trial.state().status)


def summarize(case: str, rows: list[dict], cold: float | None, outcome: str) -> dict:
    def median(key):
        values = [r[key] for r in rows if r.get(key) is not None]
        return statistics.median(values) if values else None

    return {"case": case, "kills": len(rows), "outcome": outcome, "cold_start_s": cold,
            "death_to_detection_s": median("death_to_detection_s"),
            "detection_to_relaunch_s": median("detection_to_relaunch_s"),
            "detection_to_training_s": median("detection_to_training_s"),
            "whole_epochs_lost": median("whole_epochs_lost"), "epochs_redone": median("epochs_redone"),
            "max_epochs_redone": max((r["epochs_redone"] for r in rows), default=None), "rows": rows}


PLAIN_SCRIPT = '''
import json, sys, time
def mark(**fields):
    with open("/out/progress.jsonl", "a") as handle:
        handle.write(json.dumps({"time": time.time(), **fields}) + "\\n")
mark(event="start")
import keras
from sklearn.datasets import load_digits
x, y = load_digits(return_X_y=True)
model = keras.Sequential([keras.Input(shape=(64,)), keras.layers.Dense(8, activation="relu"),
                          keras.layers.Dense(10, activation="softmax")])
model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
class Mark(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        mark(event="training")
    def on_epoch_end(self, epoch, logs=None):
        mark(event="epoch", epoch=epoch + 1)
model.fit(x / 16.0, y, epochs=%d, batch_size=8, verbose=0, callbacks=[Mark()])
'''


def measure_docker_restart_policy(folder: Path, image: str) -> dict:
    """Docker's own healing: `--restart on-failure` on a plain script (no checkpoint: it starts from zero).

    `docker kill` counts as a manual stop (no restart), so the script's process is killed from the host."""
    (folder / "code").mkdir(parents=True)
    (folder / "out").mkdir()
    os.chmod(folder / "out", 0o777)
    (folder / "code" / "train.py").write_text(textwrap.dedent(PLAIN_SCRIPT % EPOCHS))
    name = f"mlci-bench-restart-{os.getpid()}"
    subprocess.run(["docker", "run", "-d", "--name", name, "--restart", f"on-failure:{KILLS + 1}", "--network", "none",
                    "--entrypoint", "python", "-v", f"{folder / 'code'}:/code:ro", "-v", f"{folder / 'out'}:/out",
                    "-e", "TF_CPP_MIN_LOG_LEVEL=3", "-e", "HOME=/tmp", image, "/code/train.py"],
                   check=True, capture_output=True)
    progress = folder / "out" / "progress.jsonl"

    def marks():
        try:
            return [json.loads(line) for line in progress.read_text().splitlines() if line.endswith("}")]
        except OSError:
            return []

    rows = []
    rng = random.Random(0)
    try:
        first = _wait(lambda: next((m for m in marks() if m["event"] == "training"), None))
        start = next(m for m in marks() if m["event"] == "start")
        cold = first["time"] - start["time"]
        for kill in range(KILLS):
            target = 1 + kill % 3
            _wait(lambda: sum(1 for m in marks()[_last_start(marks()):] if m["event"] == "epoch") >= target)
            time.sleep(rng.uniform(0.1, 0.9) * 0.5)
            done = sum(1 for m in marks()[_last_start(marks()):] if m["event"] == "epoch")
            count = len(marks())
            pid = int(subprocess.run(["docker", "inspect", "-f", "{{.State.Pid}}", name], check=True,
                                     capture_output=True, text=True).stdout)
            killed_at = time.time()
            os.kill(pid, signal.SIGKILL)
            restarted = _wait(lambda: next((m for m in marks()[count:] if m["event"] == "start"), None))
            training = _wait(lambda: next((m for m in marks()[count:] if m["event"] == "training"), None))
            rows.append({"kill": kill + 1, "epochs_done_at_kill": done, "resumed_from_epoch": 0,
                         "death_to_detection_s": None, "death_to_restart_s": restarted["time"] - killed_at,
                         "detection_to_training_s": training["time"] - killed_at,
                         "whole_epochs_lost": done, "epochs_redone": done})
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
    result = summarize("docker --restart on-failure (plain script)", rows, cold, "restarted from zero each time")
    result["note"] = "no detection step of its own; 'detection to training' counts from the kill"
    return result


def _last_start(marks: list[dict]) -> int:
    return max((i for i, m in enumerate(marks) if m["event"] == "start"), default=0)


def _engine_answers() -> bool:
    try:
        from mlci.runners.docker import engine_answers
    except ImportError:
        return False
    return engine_answers(timeout=20)  # a loaded machine answers a ping slowly


def _fmt(value, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def main() -> None:
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        os.chmod(folder, 0o755)
        results.append(measure_mlci("local", folder / "local"))
        if "--no-docker" not in sys.argv and _engine_answers():
            from mlci.core.config import ImagesConfig

            image = ImagesConfig().keras
            try:
                results.append(measure_mlci("docker", folder / "docker"))
            except Exception as exc:  # noqa: BLE001  (a bench reports what it could not measure)
                results.append({"case": "mlci monitor, docker runner", "error": f"{type(exc).__name__}: {exc}"})
            try:
                results.append(measure_docker_restart_policy(folder / "policy", image))
            except Exception as exc:  # noqa: BLE001
                results.append({"case": "docker --restart on-failure", "error": f"{type(exc).__name__}: {exc}"})
    table = Table(title=f"recovery after a kill: medians over {KILLS} kills of one seeded Keras trial "
                        f"({EPOCHS} epochs, digits)")
    for column in ("case", "cold start s", "death → detection s", "detection → relaunch s", "detection → training s",
                   "whole epochs lost", "epochs redone", "max redone"):
        table.add_column(column, justify="left" if column == "case" else "right")
    for row in results:
        if "error" in row:
            table.add_row(row["case"], f"not measured: {row['error']}", "", "", "", "", "", "")
            continue
        table.add_row(row["case"], _fmt(row["cold_start_s"]), _fmt(row["death_to_detection_s"], 3),
                      _fmt(row["detection_to_relaunch_s"], 3), _fmt(row["detection_to_training_s"]), _fmt(row["whole_epochs_lost"], 1),
                      _fmt(row["epochs_redone"]), _fmt(row["max_epochs_redone"]))
    Console(width=160).print(table)
    Console().print("cold start: process (or container) start + imports + data, up to the first heartbeat. "
                    "Targets: detection < 1 s; training again within the cold start; at most one epoch redone.")
    target = ROOT / "bench" / "results" / "recovery.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"kills": KILLS, "epochs": EPOCHS, "cases": results}, indent=2) + "\n")
    Console().print(f"wrote {target}")


if __name__ == "__main__":
    main()
