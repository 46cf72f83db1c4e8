"""Per-trial overhead (trial wall time minus the time inside fit and evaluate), side by side, in one run.

On the Keras CNN, the PyTorch CNN and the scikit-learn example: a fresh process per trial (`workers = "fresh"`),
a warm worker (`workers = "warm"`, the default), and KerasTuner 1.4.8 training its trials inside its one process
(not for PyTorch); then a 10-trial `mlci run` search (fresh, warm, and `workers = "daemon"` with the worker an
earlier run left warm), each in a process of its own as `mlci run` is, against the sum of its trials' fit and evaluate, with where the rest of its wall time goes
(bench/_search_breakdown.py: preparation, waiting for the warm worker, the oracle and Optuna, launch, the trial
process outside fit and evaluate, settle, verdict, report). `--docker` adds a container per trial (the Docker
runner, `workers = "fresh"`) and a standby container per trial (`"warm"`: made while the trial before trains) to
the per-trial table, both over the trials of one run. Goals (issue 18): overhead from the second trial on
<= 0.4 s locally and 1.0 s in Docker; a 10-trial search within 1.2x. Prints tables and writes bench/results/overhead.json.
Run: nice -n 10 python bench/overhead.py [--trials 3] [--search 10] [--examples ...] [--docker]
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
# bench/ itself comes last on the path: bench/docker.py must not stand for the Docker SDK (`import docker`)
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT / "src"))
sys.path.append(str(Path(__file__).resolve().parent))
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
from _search_breakdown import ROWS, table_rows  # noqa: E402

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
            rows.append(_row(time.perf_counter() - started, trial.metrics()))
    return rows


def one_run_trials(label: str, runner, count: int) -> list[dict]:
    """`count` trials of one run (a search's proposals, as `mlci run` drives them, threshold 1.0: never met),
    each timed from its launch to its end: a standby container serves the trials of one run."""
    rows = []
    # one more trial in the budget than is run: the last one measured does not end the run (verdict, report)
    overrides = {"max_trials": count + 1, "threshold": 1.0, "pruner": "none", **(
        {"space": SMALL_SPACE[label]} if label in SMALL_SPACE else {})}
    with tempfile.TemporaryDirectory() as home:
        run, config = prepare_run(ROOT / EXAMPLES[label], store=RunStore(Path(home)), overrides=overrides)
        oracle = RunOracle(run, config)
        try:
            for _ in range(count):
                trial = oracle.next().trial
                oracle.start()
                started = time.perf_counter()
                handle = launch_trial(run, trial, runner, config)
                follow(run, trial, runner, handle, config)  # settles it: the oracle is told
                rows.append(_row(time.perf_counter() - started, trial.metrics()))
        finally:
            getattr(runner, "close", lambda: None)()
    return rows


def _row(wall: float, metrics) -> dict:
    fit_eval = metrics.train_seconds + metrics.eval_seconds
    return {"wall": wall, "fit_eval": fit_eval, "overhead": wall - fit_eval, "framework_import": metrics.import_seconds,
            "data": metrics.data_seconds, "harness": metrics.harness_seconds, "value": metrics.value}


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


def search(label: str, workers: str, trials: int) -> dict:
    """A `trials`-trial search in a process of its own, as `mlci run` is: it pays its own imports (Optuna,
    matplotlib, scikit-learn for the importances), which an earlier search in this process would have paid.
    `daemon`: a 1-trial run first leaves the worker warm (in a runtime folder of the bench's own), as a user's
    earlier run would; the measured search is the second run."""
    if workers != "daemon":
        return _one_search_process(label, workers, trials, os.environ)
    from mlci.runners.daemon import stop_all

    with tempfile.TemporaryDirectory(prefix="mlci-bench-", dir="/tmp") as folder:
        env = {**os.environ, "MLCI_RUNTIME_DIR": folder}
        try:
            _one_search_process(label, workers, 1, env)
            return _one_search_process(label, workers, trials, env)
        finally:
            os.environ["MLCI_RUNTIME_DIR"] = folder
            stop_all()
            del os.environ["MLCI_RUNTIME_DIR"]


def _one_search_process(label: str, workers: str, trials: int, env) -> dict:
    done = subprocess.run([sys.executable, __file__, "--one-search", label, workers, str(trials)],
                          capture_output=True, text=True, check=False, env=env)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("SEARCH-ROW ")), None)
    if line is None:
        raise SystemExit(f"the {label} search ({workers}) failed: {done.stderr[-2000:]}")
    return json.loads(line[len("SEARCH-ROW "):])


def one_search(label: str, workers: str, trials: int) -> None:
    """In the search's own process: a `trials`-trial search (threshold 1.0: never met) with `mlci run`'s
    driver, its wall against its trials' fit + evaluate, and where the rest of the wall went (a Breakdown)."""
    from _search_breakdown import Breakdown

    with tempfile.TemporaryDirectory() as home:
        overrides = {"workers": workers, "max_trials": trials, "threshold": 1.0, "pruner": "none"}
        if label in SMALL_SPACE:
            overrides["space"] = SMALL_SPACE[label]
        with Breakdown() as breakdown:
            result = run_pipeline(ROOT / EXAMPLES[label], store=RunStore(home), notify_outcome=False,
                                  overrides=overrides)
        measured = [trial.metrics() for trial in result.run.trials() if trial.has_metrics()]
    fit_eval = sum(m.train_seconds + m.eval_seconds for m in measured)
    parts = breakdown.parts(measured, breakdown.worker_import())
    wall = parts["wall"]
    print("SEARCH-ROW " + json.dumps({"wall": wall, "fit_eval": fit_eval, "ratio": wall / fit_eval if fit_eval else None,
                                      "trials": len(measured), "breakdown": parts}))


def docker_runner(standby: bool = False):
    """The Docker runner (`workers = "fresh"`; with standby, `"warm"`), or why it cannot run here (no engine)."""
    from mlci.runners.engine import engine_answers

    if not engine_answers(timeout=60):  # a loaded machine's engine can take seconds to answer a ping
        raise SystemExit("--docker: no Docker engine answers (make docker-ready)")
    from mlci.runners import get_runner

    return get_runner("docker", workers="warm" if standby else "fresh")


def print_tables(results: dict, args: argparse.Namespace) -> None:
    console = Console(width=150)
    if results["models"]:
        table = Table(title=f"per-trial overhead = wall - (fit + evaluate), seconds; trials 2..{args.trials} median "
                            f"(trial 1 apart)")
        for column in ("model", "way", "trial 1 wall", "trial 1 overhead", "wall", "fit+eval", "overhead", "goal",
                       "data", "accuracy"):
            table.add_column(column, justify="left" if column in ("model", "way") else "right")
        for label, ways in results["models"].items():
            for way, r in ways.items():
                later, first = r["later"], r["first_trial"]
                limit = 1.0 if "Docker" in way else 0.4
                goal = "" if way.startswith("KerasTuner") else \
                    f"{limit:g}: " + ("yes" if later["overhead"] <= limit else "NO")
                table.add_row(label, way, f"{first['wall']:.2f}", f"{first['overhead']:.2f}", f"{later['wall']:.2f}",
                              f"{later['fit_eval']:.2f}", f"{later['overhead']:.2f}", goal,
                              f"{later.get('data') or 0:.2f}", f"{later['value']:.4f}")
        console.print(table)
    if not results["search"]:
        return
    table = Table(title=f"a {args.search}-trial search (`mlci run`'s driver in a process of its own, optuna, "
                        f"threshold 1.0): wall vs its trials' fit + evaluate")
    for column in ("model", "workers", "trials", "wall s", "fit+eval s", "wall / fit+eval", "goal 1.2x",
                   "wall - fit+eval", "of which once", "per trial"):
        table.add_column(column, justify="left" if column in ("model", "workers") else "right")
    for label, ways in results["search"].items():
        for workers, r in ways.items():
            parts, n = r["breakdown"]["parts"], max(1, r["trials"])
            once = sum(parts[part] for part, _, when in ROWS if when == "once")
            per_trial = r["wall"] - r["fit_eval"] - once
            table.add_row(label, workers, str(r["trials"]), f"{r['wall']:.1f}", f"{r['fit_eval']:.1f}",
                          f"{r['ratio']:.2f}", "yes" if r["ratio"] <= 1.2 else "NO", f"{r['wall'] - r['fit_eval']:.1f}",
                          f"{once:.1f}", f"{per_trial / n:.2f}")
    console.print(table)
    for label, ways in results["search"].items():
        table = Table(title=f"where the {label} search's wall goes (seconds; `bench/_search_breakdown.py`)")
        table.add_column("part")
        table.add_column("when")
        for workers in ways:
            table.add_column(f"{workers} s", justify="right")
            table.add_column(f"{workers} per trial", justify="right")
            table.add_column(f"{workers} share", justify="right")
        rows = {workers: table_rows(r["breakdown"]) for workers, r in ways.items()}
        for index, (label_, when, *_rest) in enumerate(next(iter(rows.values()))):
            cells = []
            for workers in ways:
                cells += list(rows[workers][index][2:])
            table.add_row(label_, when, *cells)
        console.print(table)
        for workers, r in ways.items():
            seconds = r["breakdown"].get("worker_import")
            if seconds:
                waited = r["breakdown"]["parts"].get("worker", 0.0)
                print(f"  {label} {workers}: the warm worker's own import took {seconds:.2f}s; the run waited "
                      f"{waited:.2f}s for it after its preparation (the worker starts when the preparation ends)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=3, help="trials per way of running (the first is shown apart; "
                                                              "0: skip the per-trial part)")
    parser.add_argument("--search", type=int, default=10, help="trials in the search (0: skip the search)")
    parser.add_argument("--examples", default=",".join(EXAMPLES),
                        help=f"which examples, comma-separated (default all: {', '.join(EXAMPLES)})")
    parser.add_argument("--docker", action="store_true",
                        help="also a container per trial (the Docker runner; needs an engine and the mlci images)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "overhead.json")
    parser.add_argument("--one-search", nargs=3, metavar=("LABEL", "WORKERS", "TRIALS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one_search:
        label, workers, trials = args.one_search
        one_search(label, workers, int(trials))
        return
    labels = [label for label in args.examples.split(",") if label in EXAMPLES]
    docker = docker_runner() if args.docker and args.trials else None  # refused now, not after minutes
    interpreter = startup([sys.executable, "-c", "pass"], 5)
    cli_import = startup([sys.executable, "-c", "import mlci.cli.pipeline, mlci.harness.train"], 5)
    results = {"interpreter_start": interpreter, "mlci_import_start": cli_import, "load_average_start":
               os.getloadavg()[0], "cpus": os.cpu_count(), "models": {}, "search": {}}
    if args.trials:
        warm = WarmRunner()
        try:
            for label in labels:
                model = Path(EXAMPLES[label])
                results["models"][label] = {
                    "fresh process": summary(mlci_trials(model, LocalRunner(), args.trials)),
                    "warm worker": summary(mlci_trials(model, warm, args.trials)),
                }
                if label not in NO_KERASTUNER:
                    results["models"][label]["KerasTuner in-process"] = summary(kerastuner_trials(model, args.trials))
                if docker is not None:  # both in one run (a search's proposals), so that a standby serves it
                    results["models"][label]["container per trial (Docker, fresh)"] = summary(
                        one_run_trials(label, docker, args.trials))
                    results["models"][label]["standby container (Docker, warm)"] = summary(
                        one_run_trials(label, docker_runner(standby=True), args.trials))
        finally:
            warm.close()
    if args.search:
        for label in labels:
            results["search"][label] = {workers: search(label, workers, args.search)
                                        for workers in ("fresh", "warm", "daemon")}
    results["load_average_end"] = os.getloadavg()[0]
    print_tables(results, args)
    print(f"python start {interpreter:.2f}s; python + mlci import {cli_import:.2f}s; load average "
          f"{results['load_average_start']:.1f} -> {results['load_average_end']:.1f} on {os.cpu_count()} cores "
          f"(a busy machine stretches the parts outside fit + evaluate most: compare the ratios and the breakdown)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
