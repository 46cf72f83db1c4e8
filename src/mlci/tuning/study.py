"""The Optuna study's storage and pruner, shared by the strategy (which asks) and the harness (which reports).

Optuna is imported inside the functions, so importing this module never needs it.
"""
from __future__ import annotations

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


def open_storage(url: str) -> Any:
    """An RDB storage; SQLite waits for a lock rather than failing when trials write at once."""
    optuna = quiet_optuna()
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
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
