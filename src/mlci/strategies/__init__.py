"""Strategies that propose hyperparameters, chosen by `strategy` in mlci.toml."""
from __future__ import annotations

from mlci.errors import ConfigError
from mlci.strategies.base import PastTrial, Proposal, Strategy, past_trials
from mlci.strategies.ladder import LadderStrategy

STRATEGIES: dict[str, type[Strategy]] = {"ladder": LadderStrategy}

__all__ = ["PastTrial", "Proposal", "Strategy", "past_trials", "get_strategy", "STRATEGIES"]


def get_strategy(name: str) -> type[Strategy]:
    if name not in STRATEGIES:
        raise ConfigError(f"strategy '{name}' is not available", hint=f"use one of {', '.join(sorted(STRATEGIES))}")
    return STRATEGIES[name]
