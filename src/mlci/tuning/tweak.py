"""Job 4's action: below the threshold, propose the next trial (`mlci tweak`); it never trains.

Writes trials/<n>/hparams.json from the configured strategy, within the budget
(max_trials, max_minutes, patience).
"""
from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any, Collection

from mlci.core.objective import better
from mlci.core.config import Config, validate_config
from mlci.tuning.spaces import NotLiteral, module_literal
from mlci.core.store import HparamsRecord, Run, Trial
from mlci.tuning.strategies import get_strategy, past_trials


def module_defaults(model_file: Path) -> dict[str, Any]:
    """The model's HPARAMS literal, read from the source without importing it (no TensorFlow start-up).

    For a plain script (no build_model): the knobs the rewriter finds (epochs, units, ...).
    """
    from mlci.source.mode import is_script
    from mlci.source.rewrite import scan

    try:
        source = Path(model_file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    if is_script(source):
        return scan(source, str(model_file)).hparams()
    try:
        value = module_literal(model_file, "HPARAMS")
    except NotLiteral:
        return {}
    return dict(value) if isinstance(value, dict) else {}


def script_knobs(model_file: Path) -> str | None:
    """One line for a plain script: the knobs tweak can rewrite (file:line), or why there are none."""
    from mlci.source.mode import is_script
    from mlci.source.rewrite import scan

    try:
        source = Path(model_file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    if not is_script(source):
        return None
    found = scan(source, Path(model_file).name)
    if found.error:
        return f"script mode: {found.error}; it trains as written and cannot be tweaked"
    return f"script mode: {found.summary()}"


def run_config(run: Run) -> Config:
    return validate_config(run.record().config, f"{run.record_path} (config)")


def budget_left(run: Run, config: Config | None = None) -> tuple[bool, str]:
    """Is there budget for another trial? And if not, why (one line)."""
    config = config or run_config(run)
    history = past_trials(run)
    if len(history) >= config.max_trials:
        return False, f"max_trials ({config.max_trials}) reached"
    if config.max_minutes is not None:
        started = datetime.fromisoformat(run.record().created_at).timestamp()
        if (time.time() - started) / 60 >= config.max_minutes:
            return False, f"max_minutes ({config.max_minutes:g}) reached"
    if config.patience is not None and history:
        best_at, best_value = 0, None
        for index, trial in enumerate(history):
            if better(trial.value, best_value, config.metric):
                best_at, best_value = index, trial.value
        if len(history) - 1 - best_at >= config.patience:
            return False, f"no improvement in {config.patience} trials (patience)"
    return True, ""


def strategy_for(run: Run, config: Config | None = None):
    config = config or run_config(run)
    record = run.record()
    framework = record.kind.framework if record.kind else "keras"
    baseline = module_defaults(Path(record.model_file))
    return get_strategy(config.strategy)(run, config, baseline, framework)


def tweak(run: Run, config: Config | None = None, busy: Collection[int] = ()) -> Trial | None:
    """Write the next trial's hparams.json; None when the budget or the strategy is spent.

    `busy`: trials training right now (parallel trials), which are not "a proposal not trained yet".
    """
    config = config or run_config(run)
    pending = [t for t in run.trials() if t.hparams_path.exists() and not t.has_metrics()
               and t.number not in busy and t.state().status in ("pending", "running")]
    if pending:
        return pending[0]  # a proposal not trained yet: don't propose another (idempotent in Jenkins retries)
    if past_trials(run):
        ok, _ = budget_left(run, config)
        if not ok:
            strategy_for(run, config).finish()  # the study still learns the last trial's result
            return None
    proposal = strategy_for(run, config).propose()
    if proposal is None:
        return None
    trial = run.new_trial()
    trial.write_hparams(HparamsRecord(trial=trial.number, hparams=proposal.hparams, proposed_by=proposal.proposed_by,
                                      parent=proposal.parent, change=proposal.change, **proposal.extra))
    _rewrite_script(trial, Path(run.record().model_file), proposal.hparams)
    return trial


def _rewrite_script(trial: Trial, model_file: Path, hparams: dict[str, Any]) -> None:
    """A script's proposal is also written out as trials/<n>/model.py + model.diff, for job 4's log.

    The harness writes the same copy again before training (the rewrite is deterministic); a
    rewrite that fails here fails that trial there, with the message in its log.
    """
    from mlci.core.errors import MlciError
    from mlci.source.mode import is_script
    from mlci.harness.script import prepare_copy

    try:
        if is_script(model_file.read_text(encoding="utf-8")):
            prepare_copy(trial.dir, model_file, hparams)
    except (OSError, UnicodeDecodeError, MlciError):
        pass
