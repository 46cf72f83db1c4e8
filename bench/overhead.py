"""Per-trial orchestration overhead: trial wall time minus the time inside fit/evaluate.

Runs real trials of the examples through the local runner (as `mlci run` does) and splits the
rest into interpreter start-up, framework import, data loading and orchestration. Prints a
table and writes bench/results/overhead.json.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from mlci.orchestration.lifecycle import follow, launch_trial  # noqa: E402
from mlci.orchestration.oracle import RunOracle  # noqa: E402
from mlci.orchestration.runs import prepare_run  # noqa: E402
from mlci.runners import LocalRunner  # noqa: E402
from mlci.core.store import RunStore  # noqa: E402

EXAMPLES = {"sklearn (KNN)": "models/mnist_sklearn/mnist_sklearn.py", "keras (CNN)": "models/mnist_cnn/mnist_cnn.py"}


def startup(command: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure(model: Path, repeats: int) -> dict:
    rows = []
    for index in range(repeats):
        with tempfile.TemporaryDirectory() as home:
            store = RunStore(home)
            run, config = prepare_run(ROOT / model, store=store)
            trial = RunOracle(run).ask().trial
            runner = LocalRunner()
            started = time.perf_counter()
            handle = launch_trial(run, trial, runner, config)
            follow(run, trial, runner, handle, config)
            wall = time.perf_counter() - started
            metrics = trial.metrics()
            fit_eval = metrics.train_seconds + metrics.eval_seconds
            rows.append({"wall": wall, "fit_eval": fit_eval, "overhead": wall - fit_eval,
                         "framework_import": metrics.import_seconds, "data": metrics.data_seconds,
                         "harness": metrics.harness_seconds, "value": metrics.value})
    return {key: statistics.median(r[key] for r in rows) for key in rows[0]} | {"repeats": repeats}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "overhead.json")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    interpreter = startup([sys.executable, "-c", "pass"], 5)
    cli_import = startup([sys.executable, "-c", "import mlci.cli, mlci.harness.train"], 5)
    results = {"interpreter_start": interpreter, "mlci_import_start": cli_import, "models": {}}
    for label, model in EXAMPLES.items():
        results["models"][label] = measure(Path(model), args.repeats)
    table = Table(title=f"per-trial overhead (median of {args.repeats}; seconds)")
    for column in ("model", "wall", "fit+eval", "overhead", "fw import", "data", "harness", "proc start",
                   "orchestr."):
        table.add_column(column, justify="right")
    for label, r in results["models"].items():
        orchestration = r["wall"] - r["harness"] - cli_import
        r["orchestration"] = orchestration
        table.add_row(label, f"{r['wall']:.2f}", f"{r['fit_eval']:.2f}", f"{r['overhead']:.2f}",
                      f"{r['framework_import']:.2f}", f"{r['data']:.2f}", f"{r['harness']:.2f}",
                      f"{cli_import:.2f}", f"{orchestration:.2f}")
    Console(width=120).print(table)
    print(f"process start = python ({interpreter:.2f}s) + importing mlci's CLI and harness; overhead = wall - fit+eval")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
