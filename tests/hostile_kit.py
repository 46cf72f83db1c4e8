"""What the hostile-input suite (tests/hostile/) shares: the CLI in-process, the one-line check, folder hashes,
and a run store made by hand (no training) that a case then damages.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner

from mlci.cli import main
from mlci.core.store import HparamsRecord, MetricsRecord, RunRecord, RunStore, write_json

SRC = Path(__file__).resolve().parents[1] / "src"
RUN_ID = "digits_knn-0123456789"

KNN = '''
    """A k-nearest-neighbours model for the digits data set."""
    from sklearn.neighbors import KNeighborsClassifier

    HPARAMS = {"n_neighbors": 3}


    def build_model(hp):
        return KNeighborsClassifier(n_neighbors=hp["n_neighbors"])
'''
KNN_TOML = 'dataset = "digits"\nmax_trials = 2\nstrategy = "ladder"\nrunner = "local"\nthreshold = 0.5\n'


@dataclass
class Said:
    """What a command did: its exit code and what it wrote."""

    code: int
    stdout: str
    stderr: str

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith(("mlci: error:", "Error:"))]


def cli(*args: str, env: dict[str, str] | None = None) -> Said:
    """`mlci ARGS` in this process (click's CliRunner): a real exit code, stdout and stderr apart.

    An exception other than SystemExit is a traceback the user would see: it fails the test at once."""
    result = CliRunner().invoke(main, [str(a) for a in args], env=env, catch_exceptions=True)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        import traceback

        trace = "".join(traceback.format_exception(result.exception))
        raise AssertionError(f"mlci {' '.join(map(str, args))} raised (exit 1, a traceback):\n{trace}")
    return Said(result.exit_code, result.stdout, result.stderr)


def mlci_process(*args: str, env: dict[str, str] | None = None, user: int | None = None,
                 cwd: Path | None = None, timeout: float = 300) -> Said:
    """`mlci ARGS` as a real process; `user`: as that uid and gid (setpriv), for stores it may not write."""
    prefix = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups"] if user is not None else []
    full_env = {**os.environ, "PYTHONPATH": str(SRC), **(env or {})}
    done = subprocess.run([*prefix, sys.executable, "-m", "mlci", *map(str, args)], env=full_env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)
    return Said(done.returncode, done.stdout, done.stderr)


def assert_refused(said: Said, code: int, *needles: str) -> str:
    """Exit `code`, no traceback, and exactly one error line that holds every needle; returns that line."""
    text = said.stdout + said.stderr
    assert "Traceback" not in text, text
    assert said.code == code, f"exit {said.code}, expected {code}:\n{text}"
    lines = said.error_lines
    assert len(lines) == 1, f"expected one error line, got {len(lines)}:\n{said.stderr}"
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
    return lines[0]


def tree_hashes(folder: Path) -> dict[str, str]:
    """Every file under `folder` (relative path -> sha256 of its bytes; links by their target); lock files
    (empty, made by opening them) are left out."""
    found: dict[str, str] = {}
    if not folder.exists():
        return found
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        if path.name.endswith(".lock") or path.name == ".lock":
            continue
        if path.is_symlink():
            found[relative] = "link:" + os.readlink(path)
        elif path.is_file():
            found[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
        elif path.is_dir():
            found[relative] = "dir"
    return found


class Untouched:
    """`with Untouched(folder, ...):` asserts that no file in those folders changed, appeared or vanished."""

    def __init__(self, *folders: Path):
        self.folders = folders

    def __enter__(self) -> "Untouched":
        self.before = [tree_hashes(folder) for folder in self.folders]
        return self

    def __exit__(self, kind, value, trace) -> None:
        if kind is not None:
            return
        for folder, before in zip(self.folders, self.before):
            after = tree_hashes(folder)
            changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
            assert not changed, f"{folder} changed: {changed[:10]}"


def write_model(folder: Path, source: str = KNN, config: str | None = KNN_TOML, name: str = "model.py") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(source).lstrip())
    if config is not None:
        (folder / "mlci.toml").write_text(config)
    return path


def make_store(home: Path, model_file: Path, *, values=(0.91, 0.95), status="exhausted", max_trials=2,
               run_id: str = RUN_ID, notify: dict | None = None):
    """A run as `mlci run` leaves it (two measured trials), written by hand: no training."""
    store = RunStore(home)
    run = store.open_run(RunRecord(
        run_id=run_id, model_name=model_file.stem, model_file=str(model_file), source_dir=str(model_file.parent),
        content_hash="c" * 64, kind={"framework": "sklearn", "architecture": "classical"},
        image="mlci/sklearn:latest",
        config={"threshold": 0.99, "max_trials": max_trials, "dataset": "digits", "strategy": "ladder",
                "notify": notify or {}},
        status=status, reason="budget" if status == "exhausted" else None,
        best_trial=max(range(len(values)), key=lambda i: values[i]) if values else None,
        best_value=max(values) if values else None,
        finished_at="2026-11-23T10:04:30+00:00" if status != "running" else None))
    for number, value in enumerate(values):
        trial = run.new_trial()
        trial.write_hparams(HparamsRecord(trial=number, hparams={"n_neighbors": 3 + number},
                                          proposed_by="baseline" if number == 0 else "ladder:n_neighbors"))
        write_json(trial.metrics_path, MetricsRecord(trial=number, value=value, accuracy=value, train_seconds=0.1))
        trial.update_state(status="succeeded", wall_seconds=1.0)
    return run
