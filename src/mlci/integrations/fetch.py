"""Job 1: take the pushed commit of the model repository into the run store (`mlci fetch`).

The code is snapshotted (git archive of that exact commit, or a plain folder keyed by its content) under
the store's src/, readable by all, so every later job trains what was pushed, whatever happens to the
workspace meanwhile.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

from mlci.core.errors import UsageError
from mlci.core.store import RunStore, file_hash


def _git(*args: str, cwd: Path | None = None, what: str | None = None) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=300)
    except FileNotFoundError:
        raise UsageError("git is not installed", hint="apt-get install git") from None
    except subprocess.TimeoutExpired:
        raise UsageError(f"git {args[0]} took more than 300s", hint="check the repository URL and the network") from None
    except subprocess.CalledProcessError as exc:
        said = exc.stderr.strip().splitlines()[-1] if exc.stderr.strip() else f"exit status {exc.returncode}"
        raise UsageError(f"git {args[0]} of {what or ' '.join(args)} failed: {said}",
                         hint="check the repository URL/path and the ref") from None
    return done.stdout.strip()


def _check_inputs(source: str, ref: str | None, model: str | None) -> None:
    """Refs, sources and model paths are values, never options or control characters (git option injection)."""
    for name, value in (("SOURCE", source), ("--ref", ref), ("--model", model)):
        if value is None:
            continue
        if not value or any(ord(c) < 32 or c == "\x7f" for c in value):
            raise UsageError(f"{name} {value!r} is empty or holds a control character",
                             hint=f"pass a plain {'ref such as main or a commit sha' if name == '--ref' else 'path'}")
        if value.startswith("-") and name != "--model":
            raise UsageError(f"{name} {value!r} starts with '-': git would read it as an option",
                             hint="pass a branch, tag or commit sha" if name == "--ref" else "pass a path or URL")
    if model is not None and Path(model).is_absolute():
        raise UsageError(f"--model {model!r} is an absolute path", hint="pass a path relative to the repository")


def _is_git(path: Path) -> bool:
    try:
        _git("rev-parse", "--git-dir", cwd=path)
        return True
    except UsageError:
        return False


def fetch(source: str, *, store: RunStore, ref: str | None = None, model: str | None = None,
          snapshot_root: Path | None = None) -> tuple[Path, str | None, str]:
    """Snapshot `source` (a git URL, a repository folder, or a plain folder) at `ref`.

    Returns (the model file inside the snapshot, the commit sha or None for a plain folder, the snapshot's
    key: the commit, or folder-<hash of its files>, which keys the run: any edit of the folder is a new run).
    """
    _check_inputs(source, ref, model)
    local = Path(source)
    workdir = None
    if local.exists() and local.is_dir():
        repo = local
    elif local.exists():
        raise UsageError(f"{source}: not a folder or git repository", hint="pass the repository folder or its URL")
    else:
        workdir = Path(tempfile.mkdtemp(prefix="mlci-fetch-"))
        _git("clone", "--quiet", "--no-checkout", "--", source, str(workdir / "repo"))
        repo = workdir / "repo"
    try:
        commit, subfolder = None, ""
        if _is_git(repo):
            commit = _git("rev-parse", "--verify", "--end-of-options", f"{ref or 'HEAD'}^{{commit}}",
                          cwd=repo, what=f"ref {ref or 'HEAD'!r}")
            # A folder inside the repository: the whole commit is snapshotted (the model may import from
            # anywhere in it) and the model is looked for in that folder of the snapshot.
            repo, subfolder = _top_and_prefix(repo)
        root = snapshot_root or store.home / "src"
        staging = Path(tempfile.mkdtemp(prefix=".fetch-", dir=_mkdir(root)))
        if commit:
            archive = subprocess.run(["git", "archive", "--format=tar", commit], cwd=repo, capture_output=True, check=True)
            subprocess.run(["tar", "-x", "-C", str(staging)], input=archive.stdout, check=True)
            target = root / commit
        else:
            shutil.copytree(repo, staging, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".mlci", ".git", "__pycache__"))
            # A plain folder has no commit: its snapshot is keyed by what it holds, so an edit makes a new one.
            target = root / f"folder-{tree_hash(staging)[:20]}"
        _readable(staging)
        try:
            staging.rename(target)
        except OSError:  # there already (fetched before, or by a fetch running at the same time)
            shutil.rmtree(staging)
            if not target.is_dir():
                raise
            _readable(target)  # a snapshot made before snapshots were readable by all
        folder = target / subfolder
        if not folder.is_dir():
            raise UsageError(f"{source}: folder {subfolder.rstrip('/')} is not in commit {commit[:12]} of {repo}",
                             hint="commit it (git add, git commit) and fetch again, or pass --ref with a commit that has it")
        model_file = _entry(folder, model, snapshot=target, source=source)
        return model_file, commit, target.name
    finally:
        if workdir:
            shutil.rmtree(workdir, ignore_errors=True)


def tree_hash(folder: Path) -> str:
    """sha256 over a folder's files: their paths (relative, sorted) and contents."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(file_hash(path).encode() + b"\0")
    return digest.hexdigest()


def _readable(folder: Path) -> None:
    """A snapshot is a read-only input for every user: folders 0755, files 0644 (0755 if executable).

    mkdtemp makes the folder 0700 and tar/copytree follow the umask, but a trial container runs
    as another user (uid 1000) that must read the model mounted at /model.
    """
    for path in [folder, *folder.rglob("*")]:
        if path.is_symlink():
            continue
        mode = path.stat().st_mode
        wanted = 0o755 if stat.S_ISDIR(mode) or mode & 0o111 else 0o644
        if stat.S_IMODE(mode) != wanted:
            try:
                os.chmod(path, wanted)
            except OSError as exc:
                raise UsageError(f"{path}: cannot make the snapshot readable by all ({exc.strerror})",
                                 hint=f"fix its owner or permissions (chmod -R a+rX {folder}) and fetch again") from None


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _top_and_prefix(repo: Path) -> tuple[Path, str]:
    """The work tree's top folder and `repo`'s path inside it ("models/a/"; "" at the top or in a bare repository)."""
    try:
        top = Path(_git("rev-parse", "--show-toplevel", cwd=repo))
    except UsageError:  # a bare repository has no work tree, so no subfolder either
        return repo, ""
    return top, _git("rev-parse", "--show-prefix", cwd=repo)


def _entry(folder: Path, model: str | None, *, snapshot: Path, source: str) -> Path:
    """The model file: `model` relative to the fetched folder, else the one detected in that folder.

    Either way it lies inside the snapshot: `..` or a committed symlink cannot point the run at another file.
    """
    if model:
        path = folder / model
        try:
            inside = path.resolve().is_relative_to(snapshot.resolve()) and path.is_file()
        except (OSError, ValueError):  # a loop of symlinks, a NUL byte
            inside = False
        if not inside:
            raise UsageError(f"{model}: no such file in {source} (snapshot {folder})",
                             hint=f"pass --model with a path relative to {source}")
        return Path(os.path.normpath(path))
    from mlci.source.detect import detect

    entry = Path(detect(folder).entry)
    if not entry.resolve().is_relative_to(snapshot.resolve()):
        raise UsageError(f"{entry}: the detected model file is a link to outside the snapshot of {source}",
                         hint="commit the model file itself, not a symbolic link to it")
    return entry
