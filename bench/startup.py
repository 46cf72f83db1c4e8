"""Start-up of the commands Jenkins calls on every build: `mlci --help`, `detect FILE`, `status --json`, `check`.

Each is a fresh `python -m mlci ...` process (as a Jenkins step runs it), timed from spawn to exit; the median
of --repeats runs is compared with the goal (0.2 s for --help, 0.3 s for the others). Also lists the heavy
libraries each command imported. Prints a table and writes bench/results/startup.json.
Run: PYTHONPATH=src nice -n 10 python bench/startup.py
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from mlci.core.store import MetricsRecord, RunRecord, RunStore, write_json  # noqa: E402

HEAVY = ("rich", "pydantic", "optuna", "docker", "jenkins", "jenkins_jobs", "numpy", "libcst", "sqlalchemy",
         "tensorflow", "sklearn", "matplotlib")
PROBE = ("import runpy, sys; sys.argv = ['mlci', *sys.argv[1:]]\ntry:\n    runpy.run_module('mlci', run_name='__main__')\n"
         "except SystemExit:\n    pass\nprint('\\nMLCI-MODULES ' + ' '.join(sorted({m.split('.')[0] for m in sys.modules})), "
         "file=sys.stderr)")


def a_run(home: Path) -> str:
    """A run with one trained trial, so `status` and `check` read real files."""
    store = RunStore(home)
    run = store.open_run(RunRecord(run_id="bench-1", model_name="model", model_file=str(ROOT / "models/mnist_cnn/mnist_cnn.py"),
                                   source_dir=str(ROOT / "models/mnist_cnn"), content_hash="abc"))
    trial = run.new_trial()
    write_json(trial.metrics_path, MetricsRecord(trial=0, value=0.91, accuracy=0.91))
    return run.id


def timed(command: list[str], env: dict[str, str], repeats: int) -> tuple[float, float, int]:
    """Median wall and CPU (user + system) seconds: on a shared machine the CPU time is the steadier figure."""
    times, cpu, code = [], [], 0
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True)
        times.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        code = done.returncode
    return statistics.median(times), statistics.median(cpu), code


def imported(args: list[str], env: dict[str, str]) -> list[str]:
    done = subprocess.run([sys.executable, "-c", PROBE, *args], env=env, capture_output=True, text=True)
    line = next((ln for ln in done.stderr.splitlines() if ln.startswith("MLCI-MODULES ")), "MLCI-MODULES ")
    return [name for name in line.split()[1:] if name in HEAVY]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "startup.json")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder) / "store"
        run_id = a_run(home)
        env["MLCI_HOME"] = str(home)
        commands = {
            "python -c pass": (None, None),
            "mlci --help": (["--help"], 0.2),
            "mlci detect FILE": (["detect", str(ROOT / "models/mnist_cnn/mnist_cnn.py")], 0.3),
            "mlci status --json": (["status", "--json", "--run", run_id], 0.3),
            "mlci check": (["check", "--run", run_id], 0.3),
        }
        rows = {}
        for label, (argv, goal) in commands.items():
            command = [sys.executable, "-c", "pass"] if argv is None else [sys.executable, "-m", "mlci", *argv]
            seconds, cpu, code = timed(command, env, args.repeats)
            rows[label] = {"seconds": seconds, "cpu_seconds": cpu, "goal": goal, "exit_code": code,
                           "met": None if goal is None else seconds <= goal,
                           "heavy_imports": imported(argv, env) if argv else []}
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"command start-up (median of {args.repeats}, seconds, {os.cpu_count()} cores)")
    for column in ("command", "wall s", "cpu s", "goal", "met", "exit", "heavy libraries imported"):
        table.add_column(column, justify="left" if column in ("command", "heavy libraries imported") else "right")
    for label, row in rows.items():
        table.add_row(label, f"{row['seconds']:.3f}", f"{row['cpu_seconds']:.3f}", "" if row["goal"] is None else f"{row['goal']:.1f}",
                      "" if row["goal"] is None else ("yes" if row["met"] else "NO"), str(row["exit_code"]),
                      ", ".join(row["heavy_imports"]) or "-")
    Console(width=130).print(table)
    print(f"load average while measuring: {os.getloadavg()[0]:.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"commands": rows, "load_average": os.getloadavg()[0]}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
