"""Per-trial overhead (trial wall time minus the time inside fit and evaluate), side by side, in one run.

On the Keras CNN, the PyTorch CNN and the scikit-learn example: a fresh process per trial (`workers = "fresh"`), a warm
worker (`workers = "warm"`, the default), and KerasTuner 1.4.8 training its trials inside its one process (not for
PyTorch);
then a 10-trial `mlci run` search (fresh and warm) against the sum of its trials' fit and evaluate.
Goals (issue 18): overhead from the second trial on <= 0.4 s locally; a 10-trial search within 1.2x.
Prints tables and writes bench/results/overhead.json. Run: nice -n 10 python bench/overhead.py
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

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from mlci.core.store import RunStore  # noqa: E402
from mlci.orchestration.lifecycle import follow, launch_trial  # noqa: E402
from mlci.orchestration.oracle import RunOracle  # noqa: E402
from mlci.orchestration.pipeline import run_pipeline  # noqa: E402
from mlci.orchestration.runs import prepare_run  # noqa: E402
from mlci.runners import LocalRunner  # noqa: E402
from mlci.runners.warm import WarmRunner  # noqa: E402

EXAMPLES = {"sklearn (KNN)": "models/mnist_sklearn/mnist_sklearn.py", "keras (CNN)": "models/mnist_cnn/mnist_cnn.py",
            "torch (CNN)": "models/mnist_torch/mnist_torch.py"}
NO_KERASTUNER = ("torch (CNN)",)  # KerasTuner trains Keras and scikit-learn models, not PyTorch ones
KERASTUNER = str(Path(__file__).with_name("_kerastuner_trials.py"))


def startup(command: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def mlci_trials(model: Path, runner, count: int) -> list[dict]:
    """`count` trials of the model's baseline, one after another through `runner` (as `mlci run` drives them)."""
    rows = []
    with tempfile.TemporaryDirectory() as home:
        for index in range(count):
            run, config = prepare_run(ROOT / model, store=RunStore(Path(home) / str(index)))
            trial = RunOracle(run).ask().trial
            started = time.perf_counter()
            handle = launch_trial(run, trial, runner, config)
            follow(run, trial, runner, handle, config)
            wall = time.perf_counter() - started
            metrics = trial.metrics()
            fit_eval = metrics.train_seconds + metrics.eval_seconds
            rows.append({"wall": wall, "fit_eval": fit_eval, "overhead": wall - fit_eval,
                         "framework_import": metrics.import_seconds, "data": metrics.data_seconds,
                         "harness": metrics.harness_seconds, "value": metrics.value})
    return rows


def kerastuner_trials(model: Path, count: int) -> list[dict]:
    """The same baseline trained `count` times as KerasTuner trials, in its one process (a subprocess here)."""
    done = subprocess.run([sys.executable, KERASTUNER, str(ROOT / model), str(count)], capture_output=True,
                          text=True, check=False)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("KT-ROWS ")), None)
    if line is None:
        raise SystemExit(f"KerasTuner bench failed: {done.stderr[-2000:]}")
    return json.loads(line[len("KT-ROWS "):])


def summary(rows: list[dict]) -> dict:
    later = rows[1:] or rows
    return {"first_trial": rows[0], "later": {key: statistics.median(r[key] for r in later) for key in later[0]},
            "trials": len(rows)}


# The search stays among models as small as the baseline: big proposals would hide the overhead in their fit.
SMALL_SPACE = {
    "keras (CNN)": {"epochs": {"type": "categorical", "choices": [1, 2]},
                    "filters": {"type": "categorical", "choices": [4, 8]},
                    "conv_blocks": {"type": "categorical", "choices": [1]},
                    "dense_layers": {"type": "categorical", "choices": [0, 1]},
                    "units": {"type": "categorical", "choices": [32]},
                    "kernel_size": {"type": "categorical", "choices": [3]},
                    "batch_size": {"type": "categorical", "choices": [64, 128]}},
}
SMALL_SPACE["torch (CNN)"] = SMALL_SPACE["keras (CNN)"]  # the PyTorch example has the same knobs


def search(label: str, model: Path, workers: str, trials: int) -> dict:
    """A `trials`-trial search (threshold 1.0: never met) with `mlci run`'s driver; wall vs fit+evaluate."""
    with tempfile.TemporaryDirectory() as home:
        started = time.perf_counter()
        overrides = {"workers": workers, "max_trials": trials, "threshold": 1.0, "pruner": "none"}
        if label in SMALL_SPACE:
            overrides["space"] = SMALL_SPACE[label]
        result = run_pipeline(ROOT / model, store=RunStore(home), notify_outcome=False, overrides=overrides)
        wall = time.perf_counter() - started
        fit_eval, done = 0.0, 0
        for trial in result.run.trials():
            if trial.has_metrics():
                metrics = trial.metrics()
                fit_eval += metrics.train_seconds + metrics.eval_seconds
                done += 1
    return {"wall": wall, "fit_eval": fit_eval, "ratio": wall / fit_eval if fit_eval else None, "trials": done}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=3, help="trials per way of running (the first is shown apart)")
    parser.add_argument("--search", type=int, default=10, help="trials in the search (0: skip the search)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "overhead.json")
    parser.add_argument("--examples", default=",".join(EXAMPLES),
                        help=f"which examples, comma-separated (default all: {', '.join(EXAMPLES)})")
    args = parser.parse_args()
    examples = {label: EXAMPLES[label] for label in args.examples.split(",")}
    interpreter = startup([sys.executable, "-c", "pass"], 5)
    cli_import = startup([sys.executable, "-c", "import mlci.cli.pipeline, mlci.harness.train"], 5)
    results = {"interpreter_start": interpreter, "mlci_import_start": cli_import, "load_average_start":
               os.getloadavg()[0], "models": {}, "search": {}}
    warm = WarmRunner()
    try:
        for label, model in examples.items():
            results["models"][label] = {
                "fresh process": summary(mlci_trials(Path(model), LocalRunner(), args.trials)),
                "warm worker": summary(mlci_trials(Path(model), warm, args.trials)),
            }
            if label not in NO_KERASTUNER:
                results["models"][label]["KerasTuner in-process"] = summary(kerastuner_trials(Path(model), args.trials))
    finally:
        warm.close()
    if args.search:
        for label, model in examples.items():
            results["search"][label] = {workers: search(label, Path(model), workers, args.search)
                                        for workers in ("fresh", "warm")}
    results["load_average_end"] = os.getloadavg()[0]
    console = Console(width=140)
    table = Table(title=f"per-trial overhead = wall - (fit + evaluate), seconds; trials 2..{args.trials} median "
                        f"(trial 1 apart)")
    for column in ("model", "way", "trial 1 wall", "trial 1 overhead", "wall", "fit+eval", "overhead", "goal 0.4",
                   "data", "accuracy"):
        table.add_column(column, justify="left" if column in ("model", "way") else "right")
    for label, ways in results["models"].items():
        for way, r in ways.items():
            later, first = r["later"], r["first_trial"]
            goal = "" if way.startswith("KerasTuner") else ("yes" if later["overhead"] <= 0.4 else "NO")
            table.add_row(label, way, f"{first['wall']:.2f}", f"{first['overhead']:.2f}", f"{later['wall']:.2f}",
                          f"{later['fit_eval']:.2f}", f"{later['overhead']:.2f}", goal,
                          f"{later.get('data') or 0:.2f}", f"{later['value']:.4f}")
    console.print(table)
    if results["search"]:
        table = Table(title=f"a {args.search}-trial search (`mlci run`, optuna, threshold 1.0): wall vs its trials' "
                            f"fit + evaluate")
        for column in ("model", "workers", "trials", "wall s", "fit+eval s", "wall / fit+eval", "goal 1.2x"):
            table.add_column(column, justify="left" if column in ("model", "workers") else "right")
        for label, ways in results["search"].items():
            for workers, r in ways.items():
                table.add_row(label, workers, str(r["trials"]), f"{r['wall']:.1f}", f"{r['fit_eval']:.1f}",
                              f"{r['ratio']:.2f}", "yes" if r["ratio"] <= 1.2 else "NO")
        console.print(table)
    print(f"python start {interpreter:.2f}s; python + mlci import {cli_import:.2f}s; load average "
          f"{results['load_average_start']:.1f} -> {results['load_average_end']:.1f} on {os.cpu_count()} cores")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
