"""A trial's work area: a private copy of the model's folder inside the run store (trials/<n>/work).

The trial's process runs there (its cwd, and where its model file is imported or run from), so the
user's folder and a fetched snapshot are only ever read, once, to make the copy: never written, never
linked, never a working directory, never mounted into a container.
"""
from __future__ import annotations

import os
import shutil
import stat
import sys
from pathlib import Path

WORK_NAME = "work"
# Never copied: version control, run stores, caches and environments (large, and never model inputs).
NEVER_COPIED = {".git", ".hg", ".svn", ".mlci", "__pycache__", ".ipynb_checkpoints", ".venv", "venv", ".tox",
                "node_modules", ".pytest_cache", ".mypy_cache", ".ruff_cache"}


def work_dir(trial_dir: Path) -> Path:
    """Where a trial runs: the one place every runner and the harness take it from."""
    return Path(trial_dir) / WORK_NAME


def in_work_area(trial_dir: Path, path: Path) -> bool:
    work = work_dir(trial_dir).resolve()
    return work == Path(path).resolve().parent or work in Path(path).resolve().parents


def populate(source_dir: Path, work: Path, skip: frozenset[str] | set[str] = frozenset()) -> None:
    """Fill `work` with a fresh copy of `source_dir` (files copied, never linked; owner-writable).

    A copy, not a link: a script that rewrites its data file, or a build_model that deletes files in
    its cwd, changes the trial's copy only. Entries mlci cannot read are left out (the trial fails on
    them itself if it needs them); the run store, when it lives inside the folder, is not copied into itself.
    """
    source_dir = Path(source_dir).resolve()
    clear(work)
    work.mkdir(parents=True)
    _copy_tree(source_dir, work, skip, Path(work).resolve())


def _copy_tree(source: Path, target: Path, skip: frozenset[str] | set[str], work: Path) -> None:
    try:
        entries = sorted(os.scandir(source), key=lambda e: e.name)
    except OSError:
        return
    for entry in entries:
        if entry.name in skip or entry.name in NEVER_COPIED:
            continue
        path = Path(entry.path)
        destination = target / entry.name
        try:
            if entry.is_symlink():
                resolved = path.resolve()
                if not resolved.exists() or resolved == source or resolved in source.parents:
                    continue  # dangling, or a loop back up the tree
            else:
                resolved = path
            if resolved == work or resolved in work.parents:
                continue  # the run store lives inside the model's folder: never copy it into itself
            if resolved.is_dir():
                destination.mkdir()
                _copy_tree(resolved, destination, frozenset(), work)
                _owner_writable(destination, directory=True)
            elif resolved.is_file():
                shutil.copyfile(resolved, destination)
                _owner_writable(destination, mode=resolved.stat().st_mode)
        except OSError:
            continue


def _owner_writable(path: Path, *, directory: bool = False, mode: int | None = None) -> None:
    """Owner read/write (and search for folders) whatever the original's mode: the copy is the trial's own."""
    base = stat.S_IMODE(mode if mode is not None else path.stat().st_mode)
    os.chmod(path, base | (stat.S_IRWXU if directory else stat.S_IRUSR | stat.S_IWUSR))


def clear(work: Path) -> None:
    """Remove an earlier attempt's work area, whatever modes the trial left on it."""
    if not work.exists() and not work.is_symlink():
        return
    if work.is_symlink() or work.is_file():
        work.unlink()
        return

    def _retry(function, path, _exc) -> None:
        os.chmod(os.path.dirname(path), stat.S_IRWXU)
        try:
            os.chmod(path, stat.S_IRWXU)
        except OSError:
            pass
        function(path)

    if sys.version_info >= (3, 12):
        shutil.rmtree(work, onexc=_retry)
    else:
        shutil.rmtree(work, onerror=_retry)


def model_in_work(trial_dir: Path, model_file: Path, source_dir: Path | None = None) -> Path:
    """The model file as the trial runs it: inside its work area (copying the folder there unless it already is)."""
    model_file = Path(model_file)
    if in_work_area(trial_dir, model_file):
        return model_file
    source_dir = Path(source_dir) if source_dir is not None else model_file.parent
    work = work_dir(trial_dir)
    populate(source_dir, work)
    relative = model_file.resolve().relative_to(source_dir.resolve())
    return work / relative
