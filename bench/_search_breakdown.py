"""Where a `mlci run` search's wall time goes, for bench/overhead.py: each second attributed to one part of mlci.

`Breakdown` wraps the functions `run_pipeline` calls (preparation, the oracle's ask and propose, the launch,
following a trial, settling it, the verdict, the report) and counts each one's *exclusive* wall time (a
nested call is counted in its own part, not twice). The time spent following a trial is split with the
trial's metrics.json: fit + evaluate, data, the model module's import, the rest of the harness, and what lies
outside the harness (fork or process start, `mlci train`'s start, the exit, noticing the end). The parts add
up to the search's wall time; what no part claims is shown as "other".
"""
from __future__ import annotations

import threading
import time
from collections import defaultdict
from typing import Any, Callable

# (module, attribute, part): what is timed. Methods are wrapped on their class.
WRAPPED = (
    ("mlci.orchestration.pipeline", "prepare_run", "prepare"),
    ("mlci.orchestration.pipeline", "get_runner", "prepare"),
    ("mlci.runners.warm.Worker", "__init__", "worker"),
    ("mlci.runners.warm.DaemonWorker", "__init__", "worker"),
    ("mlci.runners.warm._Connection", "wait_ready", "worker"),
    ("mlci.orchestration.oracle.RunOracle", "next", "ask"),
    ("mlci.orchestration.oracle.RunOracle", "start", "ask"),
    ("mlci.orchestration.oracle.RunOracle", "propose", "propose"),
    ("mlci.orchestration.pipeline", "launch_trial", "launch"),
    ("mlci.orchestration.lifecycle", "launch_trial", "launch"),
    ("mlci.orchestration.pipeline", "follow", "follow"),
    ("mlci.orchestration.lifecycle", "settle", "settle"),
    ("mlci.orchestration.oracle.RunOracle", "tell", "settle"),
    ("mlci.orchestration.oracle.RunOracle", "finish", "verdict"),
    ("mlci.orchestration.pipeline", "_wrap_up", "report"),
    ("mlci.runners.warm.WarmRunner", "close", "close"),
    ("mlci.orchestration.pipeline.ImportAhead", "stop", "close"),
    ("mlci.integrations.reports", "_tuning_summary", "report_study"),
    ("mlci.integrations.reports", "write_plot", "report_plot"),
)

# The table's rows, in the order a search meets them: (part, label, once or per trial).
ROWS = (
    ("prepare", "run preparation: config, detection, run store, strategy, runner", "once"),
    ("worker", "waiting for the warm worker's framework import", "once"),
    ("ask", "oracle: what next (run store reads, hparams.json, run.json)", "per trial"),
    ("propose", "oracle: Optuna's proposal (open the study, sync, TPE ask)", "per trial"),
    ("launch", "launch: trial spec, work area copy, fork / process start", "per trial"),
    ("fit_eval", "trial: fit + evaluate (the denominator)", "per trial"),
    ("data", "trial: data load", "per trial"),
    ("model_import", "trial: importing the model module", "per trial"),
    ("harness_rest", "trial: rest of the harness (spec, model save, metrics.json, fsyncs)", "per trial"),
    ("outside", "trial: outside the harness (fork or start, `mlci train`, exit, end noticed)", "per trial"),
    ("settle", "settle: trial.json, best/, run.json, oracle.tell, tracking", "per trial"),
    ("verdict", "verdict: oracle.finish (Optuna sync, importances)", "once"),
    ("report_study", "report: the study's summary (importances)", "once"),
    ("report_plot", "report: plots (matplotlib)", "once"),
    ("report", "report: report.html, index.html, notification", "once"),
    ("close", "end: the warm worker closed, background imports joined", "once"),
    ("other", "other: the pipeline's loop, locks, unclaimed", "once"),
)


def _resolve(dotted: str) -> Any:
    import importlib

    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            owner = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            owner = getattr(owner, name)
        return owner
    raise ImportError(dotted)


class Breakdown:
    """Exclusive wall seconds per part while it is active (a context manager: wraps on enter, restores on exit)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._stack: list[list[Any]] = []
        self._restore: list[tuple[Any, str, Any]] = []
        self._thread = threading.get_ident()
        self.started = self.ended = 0.0
        self.worker: Any = None

    def worker_import(self) -> float | None:
        """Seconds the warm worker spent importing the framework (in its own process), if one was used."""
        if getattr(self.worker, "reused", False):
            return 0.0  # a daemon an earlier run left warm: this run waited for no import
        return getattr(self.worker, "import_seconds", None)

    def _enter(self, part: str) -> None:
        now = time.perf_counter()
        if self._stack:
            self.seconds[self._stack[-1][0]] += now - self._stack[-1][1]
        self._stack.append([part, now])
        self.calls[part] += 1

    def _leave(self) -> None:
        now = time.perf_counter()
        part, since = self._stack.pop()
        self.seconds[part] += now - since
        if self._stack:
            self._stack[-1][1] = now

    def _timed(self, original: Callable, part: str) -> Callable:
        def timed(*args, **kwargs):
            if threading.get_ident() != self._thread:  # parallel slots' threads: not followed here
                return original(*args, **kwargs)
            if part == "worker" and args:
                self.worker = args[0]  # the warm worker: how long its import took (it reports it when ready)
            self._enter(part)
            try:
                return original(*args, **kwargs)
            finally:
                self._leave()
        timed.__wrapped__ = original
        return timed

    def __enter__(self) -> "Breakdown":
        for dotted, attribute, part in WRAPPED:
            try:
                owner = _resolve(dotted)
            except (ImportError, AttributeError):
                continue
            original = owner.__dict__.get(attribute) if isinstance(owner, type) else getattr(owner, attribute, None)
            if original is None:
                continue  # not in this version of mlci
            self._restore.append((owner, attribute, original))
            setattr(owner, attribute, self._timed(original, part))
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.ended = time.perf_counter()
        for owner, attribute, original in reversed(self._restore):
            setattr(owner, attribute, original)
        self._restore.clear()

    def parts(self, trials: list[Any], worker_import: float | None) -> dict[str, Any]:
        """The wall split into ROWS' parts (seconds), using the trials' metrics for the time spent following."""
        wall = self.ended - self.started
        found = {part: self.seconds.get(part, 0.0) for part, _, _ in ROWS}
        harness = {"fit_eval": 0.0, "data": 0.0, "model_import": 0.0, "harness_rest": 0.0}
        for metrics in trials:
            fit_eval = metrics.train_seconds + metrics.eval_seconds
            harness["fit_eval"] += fit_eval
            harness["data"] += metrics.data_seconds or 0.0
            harness["model_import"] += metrics.import_seconds or 0.0
            harness["harness_rest"] += max(0.0, (metrics.harness_seconds or 0.0) - fit_eval
                                           - (metrics.data_seconds or 0.0) - (metrics.import_seconds or 0.0))
        found.update(harness)
        found["outside"] = self.seconds.get("follow", 0.0) - sum(harness.values())
        found["other"] = wall - sum(value for part, value in found.items() if part != "other")
        return {"wall": wall, "parts": found, "trials": len(trials), "worker_import": worker_import,
                "calls": dict(self.calls)}


def table_rows(result: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """(part, when, seconds, per trial, share of the wall) for each row, then the total."""
    wall, trials = result["wall"], max(1, result["trials"])
    rows = []
    for part, label, when in ROWS:
        seconds = result["parts"].get(part, 0.0)
        per_trial = f"{seconds / trials:.3f}" if when == "per trial" else ""
        rows.append((label, when, f"{seconds:.2f}", per_trial, f"{100 * seconds / wall:.0f}%"))
    rows.append(("total: the search's wall time", "", f"{wall:.2f}", "", "100%"))
    return rows
