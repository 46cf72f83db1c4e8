"""Script mode's metric: what an unmodified script achieved, from the most trustworthy source that has one
(its own metrics.json, Keras' evaluate/fit, an accuracy file, its printed output).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from mlci.core.errors import MetricsError

from mlci.harness.script_hooks import KerasCapture, is_number

ACCURACY_FILES = ("accuracy.txt", "result.txt", "new_accuracy.txt")
SCRIPT_METRICS = "metrics.json"
NUMBER = r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?"
STDOUT_ACCURACY = re.compile(r"(?i)acc(?:uracy)?\b[^0-9\n]{0,30}?(" + NUMBER + r")\s*(%)?")
KERAS_ACCURACY_KEYS = ("accuracy", "acc", "sparse_categorical_accuracy", "categorical_accuracy", "binary_accuracy",
                       "compile_metrics")


# ----------------------------------------------------------------------------- the metric


@dataclass
class Found:
    value: float
    source: str
    accuracy: float | None = None
    loss: float | None = None


def _fraction(value: float, percent: bool) -> float | None:
    """97.3 or 97.3% -> 0.973; a value over 100 is no accuracy."""
    if percent or 1.0 < value <= 100.0:
        value = value / 100.0
    return value if 0.0 <= value <= 1.0 else None


def _from_logs(logs: dict[str, float], metric: str, prefer_val: bool) -> Found | None:
    loss = logs.get("val_loss" if prefer_val and "val_loss" in logs else "loss")
    accuracy = None
    for prefix in (("val_", "") if prefer_val else ("",)):
        accuracy = next((logs[prefix + k] for k in KERAS_ACCURACY_KEYS if prefix + k in logs), None)
        if accuracy is not None:
            break
    value = {"loss": loss}.get(metric, accuracy) if metric in ("loss", "accuracy", "val_accuracy") else logs.get(metric)
    return None if value is None else Found(float(value), "", accuracy, loss)


def _from_script_metrics(path: Path, metric: str) -> Found | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if isinstance(data, (int, float)) and not isinstance(data, bool):
        data = {metric: data}
    if not isinstance(data, dict):
        return None
    candidates = [metric, "value", "val_accuracy", "accuracy", "acc", "test_accuracy"] if metric != "loss" else ["loss"]
    for key in candidates:
        if is_number(data.get(key)) and not isinstance(data.get(key), bool):
            value = float(data[key])
            if metric in ("accuracy", "val_accuracy"):
                value = _fraction(value, False)
                if value is None:
                    continue
            return Found(value, SCRIPT_METRICS, accuracy=value if metric != "loss" else None,
                         loss=float(data["loss"]) if is_number(data.get("loss")) else None)
    return None


def _from_file(path: Path) -> float | None:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    match = re.search(NUMBER, text)
    if not match:
        return None
    return _fraction(float(match.group()), "%" in text[match.end():match.end() + 3])


def _from_stdout(lines: list[str]) -> float | None:
    for line in reversed(lines):
        matches = list(STDOUT_ACCURACY.finditer(line))
        for match in reversed(matches):
            value = _fraction(float(match.group(1)), bool(match.group(2)))
            if value is not None:
                return value
    return None


def capture_metric(work: Path, started: float, metric: str, keras_capture: KerasCapture | None,
                   output: list[str], accuracy_files: list[str]) -> Found:
    """The script's metric, from the most trustworthy source that has one (docs/scripts.md gives the order)."""
    own = work / SCRIPT_METRICS
    if own.exists() and own.stat().st_mtime >= started - 1:
        found = _from_script_metrics(own, metric)
        if found:
            return found
    last = keras_capture.last if keras_capture else None
    if last and last[0] == "keras-evaluate":
        found = _from_logs(last[1], metric, False)
        if found:
            found.source = "keras-evaluate"
            return found
    if last and last[0] == "keras-fit" and any(k.startswith("val_") for k in last[1]):
        found = _from_logs(last[1], metric, True)
        if found:
            found.source = "keras-fit (validation)"
            return found
    if metric in ("accuracy", "val_accuracy"):
        for name in [*ACCURACY_FILES, *accuracy_files]:
            path = work / name
            if path.is_file() and path.stat().st_mtime >= started - 1:
                value = _from_file(path)
                if value is not None:
                    return Found(value, f"file:{name}", accuracy=value)
        value = _from_stdout(output)
        if value is not None:
            return Found(value, "stdout", accuracy=value)
    if last and last[0] == "keras-fit":
        found = _from_logs(last[1], metric, False)
        if found:
            found.source = "keras-fit (training)"
            return found
    names = ", ".join([*ACCURACY_FILES, *accuracy_files])
    raise MetricsError(
        f"the script ran to the end but reported no {metric} that mlci can read; report it one of three ways: "
        f"(1) write {SCRIPT_METRICS} in the script's folder, e.g. {{\"{metric}\": 0.97}}; "
        f"(2) print a line such as 'accuracy: 0.97' (or 97.0%); (3) write the number to one of {names} "
        f"(more names: accuracy_files in [data] of mlci.toml)",
        hint="a Keras model's evaluate() or fit(validation_data=...) is read automatically")
