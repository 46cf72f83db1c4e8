"""Benchmark of script mode: unmodified scripts through `mlci run`, the default strategy and the ladder side by side.

For each script in bench/scripts/ (40 of the styles users push): detection, the metric captured at the
baseline, trials until the threshold (or the best within the budget), trials wasted on refused or invalid
rewrites, training seconds. Prints a table, writes bench/results/scripts.json (after every script, so a
partial run keeps what it measured). BENCH_SCRIPTS (folder), BENCH_ONLY (comma-separated name prefixes),
BENCH_STRATEGIES (default "optuna,ladder"), BENCH_THRESHOLD (0.80), BENCH_MAX_TRIALS (10), BENCH_JOBS (2),
BENCH_OUT (the JSON file).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from mlci.core.objective import Objective  # noqa: E402
from mlci.core.store import RunStore  # noqa: E402

SCRIPTS = Path(os.environ.get("BENCH_SCRIPTS", ROOT / "bench" / "scripts"))
ONLY = [p for p in os.environ.get("BENCH_ONLY", "").split(",") if p]
STRATEGIES = os.environ.get("BENCH_STRATEGIES", "optuna,ladder").split(",")
THRESHOLD = float(os.environ.get("BENCH_THRESHOLD", "0.80"))
MAX_TRIALS = int(os.environ.get("BENCH_MAX_TRIALS", "10"))
JOBS = int(os.environ.get("BENCH_JOBS", "2"))
TARGET = Path(os.environ.get("BENCH_OUT", ROOT / "bench" / "results" / "scripts.json"))
# A failed tuning trial whose reason is one of these was a proposal that could never have trained.
WASTED = ("cannot rewrite", "not remove", "no place in the source", "would not build", "negative dimension",
          "Negative dimension", "must be a number")


def measure(script: Path, strategy: str, home: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "TF_CPP_MIN_LOG_LEVEL": "3",
           "KERAS_HOME": str(home / "keras"), "OMP_NUM_THREADS": "1", "TF_NUM_INTRAOP_THREADS": "1"}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "mlci", "run", str(script), "--home", str(home), "--threshold",
                           str(THRESHOLD), "--max-trials", str(MAX_TRIALS), "--strategy", strategy, "--no-notify",
                           "-q"], env=env, capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - started
    runs = RunStore(home).runs()
    trials, detection = [], None
    if runs:
        record = runs[0].record()
        detection = f"{record.kind.framework}/{record.kind.architecture} ({record.kind.mode})" if record.kind else None
        for trial in runs[0].trials():
            metrics = trial.metrics() if trial.has_metrics() else None
            state = trial.state()
            trials.append({"trial": trial.number, "proposed_by": trial.hparams().proposed_by,
                           "change": trial.hparams().change, "value": metrics.value if metrics else None,
                           "source": metrics.source if metrics else None,
                           "train_seconds": metrics.train_seconds if metrics else (state.wall_seconds or 0.0),
                           "status": str(state.status), "reason": state.reason})
    objective = Objective("accuracy", THRESHOLD)
    reached = next((i for i, t in enumerate(trials) if objective.met(t["value"])), None)
    counted = trials if reached is None else trials[:reached + 1]
    wasted = sum(1 for t in trials[1:] if t["value"] is None and any(w in (t["reason"] or "") for w in WASTED))
    return {"script": script.name, "strategy": strategy, "exit_code": done.returncode, "detection": detection,
            "baseline": trials[0]["value"] if trials else None, "source": trials[0]["source"] if trials else None,
            "trials_needed": None if reached is None else reached + 1, "trials_run": len(trials),
            "best": max((t["value"] for t in trials if t["value"] is not None), default=None), "wasted": wasted,
            "train_seconds": round(sum(t["train_seconds"] or 0.0 for t in counted), 2),
            "wall_seconds": round(wall, 1), "trials": trials,
            "error": done.stderr.strip().splitlines()[-1] if done.returncode not in (0, 3) and done.stderr else None}


def summary(results: list[dict]) -> dict:
    found = {}
    for strategy in STRATEGIES:
        rows = [r for r in results if r["strategy"] == strategy]
        found[strategy] = {"scripts": len(rows), "reached": sum(r["trials_needed"] is not None for r in rows),
                           "wasted": sum(r["wasted"] for r in rows),
                           "train_seconds": round(sum(r["train_seconds"] for r in rows), 1)}
    return found


# Cheapest first (scikit-learn, Keras on digits, dense on MNIST, CNNs), so a partial run covers every style.
COST_ORDER = ("sk_", "k_digits", "k_", "c_digits", "c_")


def _cost(script: Path) -> tuple[int, str]:
    rank = next((i for i, prefix in enumerate(COST_ORDER) if script.stem.startswith(prefix)), len(COST_ORDER))
    return rank, script.name


def main() -> None:
    console = Console(width=220)
    scripts = sorted((s for s in SCRIPTS.glob("*.py") if not ONLY or s.stem.startswith(tuple(ONLY))), key=_cost)
    results: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="mlci-bench-scripts-") as folder:
        def one(job: tuple[Path, str]) -> dict:
            script, strategy = job
            row = measure(script, strategy, Path(folder) / f"{script.stem}-{strategy}")
            console.print(f"{script.name} [{strategy}]: baseline {row['baseline']}, trials needed "
                          f"{row['trials_needed']}, wasted {row['wasted']}, train {row['train_seconds']}s")
            return row

        with ThreadPoolExecutor(JOBS) as pool:
            for row in pool.map(one, [(s, strategy) for s in scripts for strategy in STRATEGIES]):
                results.append(row)
                TARGET.parent.mkdir(parents=True, exist_ok=True)
                TARGET.write_text(json.dumps({"python": sys.version.split()[0], "threshold": THRESHOLD,
                                              "max_trials": MAX_TRIALS, "summary": summary(results),
                                              "results": results}, indent=2) + "\n")
    fmt = lambda v: "—" if v is None else f"{v:.3f}"  # noqa: E731
    table = Table(title=f"scripts, threshold accuracy ≥ {THRESHOLD:g}, budget {MAX_TRIALS} trials")
    for column in ("script", "detection", "metric from", "baseline",
                   *[f"{s}: {c}" for s in STRATEGIES for c in ("trials", "best", "wasted", "train s")]):
        table.add_column(column)
    for script in scripts:
        rows = {r["strategy"]: r for r in results if r["script"] == script.name}
        first = next(iter(rows.values()))
        cells = []
        for strategy in STRATEGIES:
            r = rows[strategy]
            cells += [str(r["trials_needed"] or f"not in {r['trials_run']}"), fmt(r["best"]), str(r["wasted"]),
                      f"{r['train_seconds']:.1f}"]
        table.add_row(script.name, first["detection"] or "—", first["source"] or "—", fmt(first["baseline"]), *cells)
    console.print(table)
    for strategy, line in summary(results).items():
        console.print(f"{strategy}: {line['reached']}/{line['scripts']} reach {THRESHOLD:g} within {MAX_TRIALS} "
                      f"trials; {line['wasted']} trials wasted; {line['train_seconds']} training seconds")


if __name__ == "__main__":
    main()
