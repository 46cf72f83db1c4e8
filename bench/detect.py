"""Benchmark of `mlci detect`: accuracy on the labelled cases and time per file.

Prints a table and writes bench/results/detect.json: median time over the cases, a 10,000-line file
(AST path) and a 10 MB file (token scan). Run: PYTHONPATH=src python bench/detect.py
"""
from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
import tomllib
from pathlib import Path

from rich.console import Console
from rich.table import Table

from mlci.source.detect import detect
from mlci.core.errors import DetectionError

ROOT = Path(__file__).resolve().parent.parent
CASES_DIR = ROOT / "tests" / "source" / "detect_cases"
RESULTS = ROOT / "bench" / "results" / "detect.json"
REPEAT = 5


def _timed(path: Path) -> tuple[float, object]:
    best = None
    times = []
    for _ in range(REPEAT):
        start = time.perf_counter()
        try:
            best = detect(path)
        except DetectionError as err:
            best = err
        times.append(time.perf_counter() - start)
    return statistics.median(times), best


def _correct(case: dict, outcome: object) -> bool:
    if "error" in case:
        return isinstance(outcome, DetectionError) and case["error"] in str(outcome)
    return not isinstance(outcome, Exception) and (outcome.framework, outcome.architecture) == (
        case["framework"], case["architecture"])


def _ten_thousand_lines(folder: Path) -> Path:
    """A long but ordinary script: a Keras CNN followed by many helper functions."""
    head = (CASES_DIR / "keras_seq_cnn.py").read_text()
    block = ("def helper_{i}(values, scale={i}):\n    \"\"\"Convert values (not a Conv layer).\"\"\"\n"
             "    total = 0\n    for v in values:\n        total += v * scale  # running sum\n"
             "    return total / max(len(values), 1)\n\n\n")
    path = folder / "long_script.py"
    lines = head.splitlines(keepends=True)
    i = 0
    while len(lines) < 10_000:
        lines.extend(block.format(i=i).splitlines(keepends=True))
        i += 1
    path.write_text("".join(lines[:10_000]))
    return path


def _ten_megabytes(folder: Path) -> Path:
    head = (CASES_DIR / "keras_seq_cnn.py").read_text()
    filler = "WEIGHTS_%d = [0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]\n"
    path = folder / "ten_mb.py"
    path.write_text(head + "".join(filler % i for i in range(120_000)))
    return path


def main() -> int:
    cases = tomllib.loads((CASES_DIR / "cases.toml").read_text(encoding="utf-8"))["case"]
    rows, times, correct = [], [], 0
    for case in cases:
        seconds, outcome = _timed(CASES_DIR / case["file"])
        ok = _correct(case, outcome)
        correct += ok
        times.append(seconds)
        got = f"error: {str(outcome)[:40]}" if isinstance(outcome, Exception) else \
            f"{outcome.framework}/{outcome.architecture}"
        rows.append({"file": case["file"], "expected": case.get("error") and "error" or
                     f"{case['framework']}/{case['architecture']}", "got": got, "ok": ok, "seconds": seconds})
    with tempfile.TemporaryDirectory() as tmp:
        long_path = _ten_thousand_lines(Path(tmp))
        long_seconds, long_outcome = _timed(long_path)
        big_path = _ten_megabytes(Path(tmp))
        big_seconds, big_outcome = _timed(big_path)
        big_size = big_path.stat().st_size
    summary = {
        "cases": len(cases), "correct": correct, "accuracy": correct / len(cases),
        "median_seconds_per_case": statistics.median(times), "max_seconds_per_case": max(times),
        "ten_thousand_lines": {"seconds": long_seconds, "result": f"{long_outcome.framework}/"
                               f"{long_outcome.architecture}", "fallback": long_outcome.fallback},
        "ten_megabytes": {"bytes": big_size, "seconds": big_seconds, "result": f"{big_outcome.framework}/"
                          f"{big_outcome.architecture}", "fallback": big_outcome.fallback},
        "repeat": REPEAT, "python": sys.version.split()[0], "rows": rows,
    }
    console = Console()
    table = Table(title="mlci detect: labelled cases")
    for column in ("file", "expected", "got", "ok", "ms"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["file"], row["expected"], row["got"], "yes" if row["ok"] else "NO",
                      f"{row['seconds'] * 1000:.1f}")
    console.print(table)
    totals = Table(title="summary")
    totals.add_column("measure")
    totals.add_column("value")
    totals.add_row("accuracy on the cases", f"{correct}/{len(cases)} = {summary['accuracy']:.1%}")
    totals.add_row("median time per case", f"{summary['median_seconds_per_case'] * 1000:.1f} ms")
    totals.add_row("slowest case", f"{summary['max_seconds_per_case'] * 1000:.1f} ms")
    totals.add_row("10,000-line file (AST)",
                   f"{long_seconds * 1000:.0f} ms -> {summary['ten_thousand_lines']['result']}")
    totals.add_row(f"{big_size / 1e6:.1f} MB file (token scan)",
                   f"{big_seconds * 1000:.0f} ms -> {summary['ten_megabytes']['result']}")
    console.print(totals)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(summary, indent=2))
    console.print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0 if correct == len(cases) else 1


if __name__ == "__main__":
    sys.exit(main())
