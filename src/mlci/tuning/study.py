"""The Optuna study's storage and pruner, shared by the strategy (which asks) and the harness (which reports).

Optuna is imported inside the functions, so importing this module never needs it.
"""
from __future__ import annotations

import os
import warnings
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


# A database server's storage, one per URL and process: opening one (an engine, its pool, the schema check)
# costs more than an ask; a worker asks under the run's guard, so this time is every other worker's wait.
# Not for SQLite: a study.db file may be removed and made again, and a pooled connection would keep the old one.
_SERVERS: dict[tuple[int, str], Any] = {}


def open_storage(url: str) -> Any:
    """An RDB storage; SQLite waits for a lock rather than failing when trials write at once."""
    optuna = quiet_optuna()
    server = not url.startswith("sqlite")
    key = (os.getpid(), url)  # a forked process opens its own: a pool's connections are not shared across a fork
    if server and key in _SERVERS:
        return _SERVERS[key]
    kwargs = {"pool_pre_ping": True} if server else {"connect_args": {"timeout": 60}}
    try:
        storage = optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
    except Exception as exc:  # SQLAlchemy raises many kinds: a bad URL, a missing driver, no server
        raise ConfigError(f"storage = {url!r} cannot be opened ({type(exc).__name__}: {str(exc).splitlines()[0][:160]})",
                          hint="use a SQLAlchemy URL such as sqlite:///study.db or postgresql://user@host/db") from None
    if server:
        _SERVERS[key] = storage
    return storage


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
