"""The Strategy interface: who proposes the next trial's hyperparameters (and never trains).

A strategy rebuilds what it knows from the run store on every call, so `mlci tweak` can run
in a fresh process (a Jenkins build) and still continue the same search.
"""
from __future__ import annotations

import abc
import json
from dataclasses import dataclass, field
from typing import Any

from mlci.core.config import Config
from mlci.core.objective import Objective
from mlci.core.store import Run, Trial
from mlci.tuning.history import PastTrial, past_trials  # noqa: F401  re-exported: strategies read the history


@dataclass
class Proposal:
    hparams: dict[str, Any]
    proposed_by: str
    parent: int | None = None
    change: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # strategy bookkeeping stored in hparams.json


def same_hparams(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


class Strategy(abc.ABC):
    name = "strategy"
    # Modules its proposals and its finish() import: `mlci run` imports them in the background while the
    # baseline trains (orchestration/pipeline.py), so no proposal waits for an import.
    imports: tuple[str, ...] = ()

    def __init__(self, run: Run, config: Config, baseline: dict[str, Any], framework: str):
        self.run = run
        self.config = config
        self.baseline = dict(baseline)
        self.framework = framework
        self.objective = Objective.of(config)
        self.refused: list[tuple[dict[str, Any], str]] = []  # proposals that could not train, and why

    def refuse(self, proposal: Proposal, why: str) -> None:
        """A proposal could not train (told before any trial was made): never propose it again."""
        self.refused.append((dict(proposal.hparams), why))

    def was_refused(self, hparams: dict[str, Any]) -> bool:
        return any(same_hparams(hparams, refused) for refused, _ in self.refused)

    @abc.abstractmethod
    def propose(self) -> Proposal | None:
        """The next trial's hyperparameters, or None when the strategy has nothing left to try."""

    def observe(self, trial: Trial) -> None:
        """Called once a trial has ended (metrics written, or failed): learn from it."""

    def finish(self) -> None:
        """Called when the report is written: record what the strategy learned (importances, ...)."""
