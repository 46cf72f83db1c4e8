"""The Optuna study's storage and pruner, shared by the strategy (which asks) and the harness (which reports).

Optuna is imported inside the functions, so importing this module never needs it.
"""
from __future__ import annotations

import os
import threading
import warnings
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from mlci.core.errors import ConfigError

if TYPE_CHECKING:
    from mlci.core.store import Run


def storage_url(run: Run, storage: str | None) -> str:
    return storage or f"sqlite:///{run.study_path.resolve()}"


def study_name(run: Run) -> str:
    return f"mlci-{run.id}"


def quiet_optuna() -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


# Opened storages of this process, newest last: opening one builds an engine and checks the schema's version
# with Alembic, which `mlci run` paid at every proposal and again at its end. Keyed by the process (a
# connection never crosses a fork), the URL and, for SQLite, the file's identity (a study.db deleted and made
# again is opened afresh). A few are kept: a test session or a farm opens many runs' studies.
_OPENED: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
_OPENED_KEEP = 4
_OPENED_LOCK = threading.Lock()


def _opened_key(url: str) -> tuple[Any, ...]:
    identity = None
    if url.startswith("sqlite:///"):
        try:
            found = os.stat(url[len("sqlite:///"):])
            identity = (found.st_dev, found.st_ino)
        except OSError:
            identity = None
    return os.getpid(), url, identity


def open_storage(url: str) -> Any:
    """An RDB storage, one per database in a process; SQLite waits for a lock rather than failing when trials
    write at once."""
    key = _opened_key(url)
    with _OPENED_LOCK:
        found = _OPENED.get(key)
        if found is not None:
            _OPENED.move_to_end(key)
            return found
    storage = _open_storage(url)
    with _OPENED_LOCK:
        _OPENED[_opened_key(url)] = storage  # after the open: a new SQLite file exists now
        while len(_OPENED) > _OPENED_KEEP:
            _OPENED.popitem(last=False)
    return storage


# Studies of this process, by storage and name: a study keeps its storage's cache of finished trials (they
# never change), so a proposal reads only the trials still running rather than the whole study again. Another
# process's writes (a trial's pruning reports, `mlci tweak`) land in running trials and are read afresh.
_STUDIES: OrderedDict[tuple[int, str], tuple[Any, Any]] = OrderedDict()


def open_study(url: str, name: str, direction: str) -> Any:
    """The study `name` in the storage at `url` (created if new), one per storage and name in a process."""
    storage = open_storage(url)
    key = (id(storage), name)
    with _OPENED_LOCK:
        found = _STUDIES.get(key)
        if found is not None and found[0] is storage:
            _STUDIES.move_to_end(key)
            return found[1]
    study = quiet_optuna().create_study(storage=storage, study_name=name, direction=direction, load_if_exists=True)
    with _OPENED_LOCK:
        _STUDIES[key] = (storage, study)
        while len(_STUDIES) > 2 * _OPENED_KEEP:
            _STUDIES.popitem(last=False)
    return study


def _open_storage(url: str) -> Any:
    optuna = quiet_optuna()
    server = not url.startswith("sqlite")
    kwargs = {"pool_pre_ping": True} if server else {"connect_args": {"timeout": 60}}
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
    except Exception as exc:  # SQLAlchemy raises many kinds: a bad URL, a missing driver, no server
        raise ConfigError(f"storage = {url!r} cannot be opened ({type(exc).__name__}: {str(exc).splitlines()[0][:160]})",
                          hint="use a SQLAlchemy URL such as sqlite:///study.db or postgresql://user@host/db") from None


def make_pruner(spec: dict[str, Any] | None) -> Any:
    """The pruner named in the config; the harness rebuilds it from the same spec (hparams.json)."""
    optuna = quiet_optuna()
    name = (spec or {}).get("name", "none")
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=spec.get("n_startup_trials", 2),
                                           n_warmup_steps=spec.get("n_warmup_steps", 2))
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=spec.get("max_resource", "auto"),
                                              reduction_factor=3)
    return optuna.pruners.NopPruner()
