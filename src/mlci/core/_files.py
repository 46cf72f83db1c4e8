"""The run store's files: atomic JSON writes, schema-checked reads, file locks; an OSError as one line.

Used by store.py (which re-exports them); nothing here knows a run or a trial.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator, TypeVar

from pydantic import BaseModel, ValidationError

from mlci.core.errors import StoreError, UsageError

SCHEMA_VERSION = 1
T = TypeVar("T", bound=BaseModel)


def store_failure(path: Path, exc: OSError, doing: str) -> StoreError:
    """An OSError of the run store as one line: what could not be done, where, and what to do."""
    reason = exc.strerror or type(exc).__name__
    if isinstance(exc, (NotADirectoryError, FileExistsError)):
        hint = "a file stands where the run store needs a folder (or the reverse): move it away"
    elif isinstance(exc, IsADirectoryError):
        hint = "a folder stands where the run store needs a file: move it away"
    else:
        hint = "check the permissions and free space of the run store (--home / MLCI_HOME)"
    return StoreError(f"{path}: cannot {doing} ({reason})", hint=hint)


def write_json(path: Path, data: dict[str, Any] | BaseModel, mode: int | None = None) -> None:
    """Write JSON atomically: a reader sees the old file or the new one, never half of one.

    `mode`: the file's permissions (default 0600, mkstemp's), set before it appears under its name."""
    payload = data.model_dump(mode="json", by_alias=True) if isinstance(data, BaseModel) else data
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise store_failure(path, exc, "be written") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            if mode is not None:
                os.fchmod(handle.fileno(), mode)
            json.dump(payload, handle, indent=2, sort_keys=False)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and not isinstance(exc, StoreError):
            raise store_failure(path, exc, "be written") from None
        raise


_AT_FDCWD, _RENAME_EXCHANGE = -100, 2


def _exchange(first: Path, second: Path) -> None:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE); OSError where the system cannot."""
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        raise OSError(errno.ENOSYS, "renameat2 is not available")
    if renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), str(first))


def swap_in(staging: Path, target: Path) -> None:
    """Put the folder `staging` in `target`'s place: a reader sees the old folder or the new one, never none.

    An existing target is exchanged with staging in one step, and the old folder (now under staging's name) is
    removed. Where the file system cannot exchange (EINVAL, ENOSYS: NFS, other systems), two renames, with a
    moment between them where target is absent."""
    if target.exists():
        try:
            _exchange(staging, target)
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
                raise
        else:
            shutil.rmtree(staging, ignore_errors=True)
            return
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
        os.replace(staging, target)
        shutil.rmtree(old, ignore_errors=True)
        return
    os.replace(staging, target)


def read_record(path: Path, model: type[T], *, what: str, fix: str, error: type = UsageError) -> T:
    """Read a record; a missing, corrupt or wrongly typed file is one clear line naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: {what} not found", hint=fix) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{path}: {what} cannot be read ({exc})", hint=fix) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{path}: {what} is not valid JSON (line {exc.lineno}: {exc.msg}; truncated?)", hint=fix) from None
    except RecursionError:
        raise error(f"{path}: {what} is nested too deeply to be a record of mlci", hint=fix) from None
    if not isinstance(data, dict):
        raise error(f"{path}: {what} must be a JSON object", hint=fix)
    version = data.get("schema_version", SCHEMA_VERSION)
    if isinstance(version, int) and version > SCHEMA_VERSION:
        raise error(f"{path}: {what} has schema_version {version}, newer than this mlci ({SCHEMA_VERSION})",
                    hint="upgrade mlci")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        if not key:  # a check across keys (a metric out of range): its message names the key
            raise error(f"{path}: {what} is invalid ({first['msg'].removeprefix('Value error, ')})", hint=fix) from None
        got = repr(first.get("input"))
        got = got if len(got) <= 80 else got[:77] + "..."
        raise error(f"{path}: {what} key '{key}' is invalid ({first['msg'].lower()}, got {got})",
                    hint=fix) from None
    except RecursionError:
        raise error(f"{path}: {what} is nested too deeply to be a record of mlci", hint=fix) from None


@contextlib.contextmanager
def file_lock(path: Path, *, timeout: float | None, busy: Exception) -> Iterator[None]:
    """An exclusive fcntl lock on `path`; `busy` is raised after `timeout` seconds (None: wait forever)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+")
    except OSError as exc:
        raise store_failure(path, exc, "be opened as a lock file") from None
    with handle:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if deadline is not None and time.monotonic() >= deadline:
                    raise busy from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
