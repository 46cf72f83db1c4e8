"""Job 4's action: below the threshold, propose the next trial (`mlci tweak`); it never trains.

Writes trials/<n>/hparams.json from the configured strategy; the run oracle decides when a proposal is due.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from mlci.core.config import Config
from mlci.core.store import HparamsRecord, Run, Trial
from mlci.tuning.spaces import NotLiteral, module_literal
from mlci.tuning.strategies import get_strategy


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


def strategy_for(run: Run, config: Config | None = None):
    config = config or run.record().config
    record = run.record()
    framework = record.kind.framework if record.kind else "keras"
    baseline = module_defaults(Path(record.model_file))
    return get_strategy(config.strategy)(run, config, baseline, framework)


# A run asks again after a refused proposal at most this many times before the strategy counts as out of ideas.
MAX_REFUSED = 20


def refusal(model_file: Path, hparams: dict[str, Any]) -> str | None:
    """Why a proposal cannot train (a script the rewriter cannot change so, or whose model would not build);
    None when it can. Checked before a trial is created, so a refused proposal costs no budget."""
    from mlci.core.errors import MlciError
    from mlci.source.mode import is_script
    from mlci.source.rewrite import rewrite, scan
    from mlci.source.shapes import build_problem

    try:
        source = Path(model_file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None  # the harness reports an unreadable file itself
    if not is_script(source):
        return None
    found = scan(source, Path(model_file).name)
    wanted = {k: v for k, v in hparams.items() if k != "seed"}
    if all(found.hparams().get(k) == v for k, v in wanted.items()):
        return None  # the script as written: it runs unchanged
    try:
        result = rewrite(source, wanted, Path(model_file).name)
    except MlciError as err:
        return err.one_line()
    return build_problem(result.source, f"rewritten {Path(model_file).name}")


def tweak(run: Run, config: Config | None = None) -> Trial | None:
    """Write the next trial's hparams.json from the strategy; None when it has nothing left to try.

    A proposal that cannot train (refused by the rewriter, or a model that would not build) is told to the
    strategy as such and replaced at once: no trial folder, no budget spent. Whether a proposal is due at all
    (no open trial, budget left) is the run oracle's decision: call it through `RunOracle.propose`.
    """
    config = config or run.record().config
    strategy = strategy_for(run, config)
    model_file = Path(run.record().model_file)
    for _ in range(MAX_REFUSED):
        proposal = strategy.propose()
        if proposal is None:
            return None
        why = refusal(model_file, proposal.hparams)
        if why is None:
            break
        strategy.refuse(proposal, why)
    else:
        return None
    trial = run.new_trial()
    trial.write_hparams(HparamsRecord(trial=trial.number, hparams=proposal.hparams, proposed_by=proposal.proposed_by,
                                      parent=proposal.parent, change=proposal.change, **proposal.extra))
    _rewrite_script(trial, model_file, proposal.hparams)
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
