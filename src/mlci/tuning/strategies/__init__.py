"""Strategies that propose hyperparameters, chosen by `strategy` in mlci.toml."""
from __future__ import annotations

from mlci.core.errors import ConfigError
from mlci.tuning.strategies.base import PastTrial, Proposal, Strategy, past_trials
from mlci.tuning.strategies.ladder import LadderStrategy
from mlci.tuning.strategies.optuna import OptunaStrategy, RandomStrategy

STRATEGIES: dict[str, type[Strategy]] = {"ladder": LadderStrategy, "optuna": OptunaStrategy, "random": RandomStrategy}

__all__ = ["PastTrial", "Proposal", "Strategy", "past_trials", "get_strategy", "STRATEGIES"]


def get_strategy(name: str) -> type[Strategy]:
    if name not in STRATEGIES:
        raise ConfigError(f"strategy '{name}' is not available", hint=f"use one of {', '.join(sorted(STRATEGIES))}")
    return STRATEGIES[name]
