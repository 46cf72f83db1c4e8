"""Benchmark of script mode: each unmodified script in tests/harness/scripts/ through `mlci run` (ladder).

How many reach the threshold unmodified, and how many trials each needs; prints a table and
writes bench/results/scripts.json. BENCH_THRESHOLD (default 0.80), BENCH_MAX_TRIALS (default 6).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from mlci.core.objective import Objective  # noqa: E402
from mlci.core.store import RunStore  # noqa: E402

SCRIPTS = ROOT / "tests" / "harness" / "scripts"
THRESHOLD = float(os.environ.get("BENCH_THRESHOLD", "0.80"))
MAX_TRIALS = int(os.environ.get("BENCH_MAX_TRIALS", "6"))


def measure(script: Path, home: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "TF_CPP_MIN_LOG_LEVEL": "3",
           "KERAS_HOME": str(home / "keras")}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "mlci", "run", str(script), "--home", str(home), "--threshold",
                           str(THRESHOLD), "--max-trials", str(MAX_TRIALS), "--no-notify", "-q"],
                          env=env, capture_output=True, text=True, timeout=1800)
    wall = time.perf_counter() - started
    runs = RunStore(home).runs()
    trials = []
    if runs:
        for trial in runs[0].trials():
            value = trial.metrics().value if trial.has_metrics() else None
            trials.append({"trial": trial.number, "proposed_by": trial.hparams().proposed_by,
                           "change": trial.hparams().change, "value": value,
                           "source": trial.metrics().source if value is not None else None})
    reached = next((t["trial"] for t in trials if Objective("accuracy", THRESHOLD).met(t["value"])), None)
    return {"script": script.name, "exit_code": done.returncode, "baseline": trials[0]["value"] if trials else None,
            "source": trials[0]["source"] if trials else None, "unmodified": reached == 0,
            "trials_needed": None if reached is None else reached + 1, "trials_run": len(trials),
            "best": max((t["value"] for t in trials if t["value"] is not None), default=None),
            "wall_seconds": round(wall, 1), "trials": trials,
            "error": done.stderr.strip().splitlines()[-1] if done.returncode not in (0, 3) and done.stderr else None}


def main() -> None:
    console = Console()
    results = []
    with tempfile.TemporaryDirectory(prefix="mlci-bench-scripts-") as folder:
        for script in sorted(SCRIPTS.glob("*.py")):
            row = measure(script, Path(folder) / script.stem)
            results.append(row)
            console.print(f"{script.name}: baseline {row['baseline']}, trials needed {row['trials_needed']}")
    table = Table(title=f"unmodified scripts, threshold accuracy ≥ {THRESHOLD:g}, budget {MAX_TRIALS} trials")
    for column in ("script", "metric from", "baseline", "unmodified", "trials needed", "best", "wall s"):
        table.add_column(column)
    for row in results:
        fmt = lambda v: "—" if v is None else f"{v:.4f}"  # noqa: E731
        table.add_row(row["script"], row["source"] or "—", fmt(row["baseline"]), "yes" if row["unmodified"] else "no",
                      str(row["trials_needed"] or f"not in {row['trials_run']}"), fmt(row["best"]),
                      f"{row['wall_seconds']:.0f}")
    console.print(table)
    unmodified = sum(r["unmodified"] for r in results)
    reached = sum(r["trials_needed"] is not None for r in results)
    console.print(f"{unmodified}/{len(results)} reach the threshold unmodified; {reached}/{len(results)} within "
                  f"{MAX_TRIALS} trials")
    target = ROOT / "bench" / "results" / "scripts.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"python": sys.version.split()[0], "threshold": THRESHOLD, "max_trials": MAX_TRIALS,
                                  "unmodified": unmodified, "reached": reached, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
