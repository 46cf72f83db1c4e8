"""Creating a run, or continuing one: validate the config, detect the model kind, key the run by its content.

`mlci run` and `mlci fetch` (job 1) both start here; what the run does next is the oracle's to decide.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from mlci.core.config import Config, load_config
from mlci.core.errors import UsageError
from mlci.core.store import Kind, Run, RunRecord, RunStore, file_hash, make_run_id
from mlci.source.detect import detect
from mlci.tuning.spaces import parse_space
from mlci.tuning.tweak import strategy_for


def prepare_run(model_file: Path, *, store: RunStore, config_path: Path | None = None,
                overrides: dict[str, Any] | None = None, commit: str | None = None,
                snapshot: str | None = None, lock_timeout: float = 0.0) -> tuple[Run, Config]:
    """Validate the config, detect the model kind, create (or continue) the run for this content.

    `snapshot`: the key of the fetched snapshot the model lies in (the commit, or folder-<hash>): the run is
    keyed by it, so an edit anywhere in a fetched folder (a helper module, the data) is a new run.
    `lock_timeout`: seconds to wait for the run's lock when the config changes (BusyError, exit 9, after).
    """
    model_file = Path(model_file)
    if not model_file.exists():
        raise UsageError(f"{model_file}: model file not found", hint="pass the path of your model's .py file")
    config, found = load_config(model_file, config_path, overrides)
    parse_space(config.space, f"{found or 'config'} [space]")  # a bad search space is refused before the store is touched
    detection = detect(model_file, config=config)
    entry = Path(detection.entry).resolve()
    kind = Kind(framework=detection.framework, architecture=detection.architecture, mode=detection.mode)
    image = detection.image(config.images)
    content_hash = file_hash(entry)
    run_id = make_run_id(entry, content_hash, commit or snapshot)
    record = RunRecord(run_id=run_id, model_name=entry.stem, model_file=str(entry), source_dir=str(entry.parent),
                       content_hash=content_hash, commit=commit, kind=kind, image=image,
                       config=config)
    run = store.open_run(record)
    # Continuing a run: the config given now (a larger budget, say) wins; what was learned stays. Whether
    # that reopens a finished run is the oracle's to say when a driver next asks it. The change is made under
    # the run's lock: a second `mlci run` refused with exit 9 leaves the running run's config alone.
    stored = run.record()
    if (stored.config, stored.kind, stored.image) != (config, kind, image):
        with run.lock(timeout=lock_timeout):
            run.update(config=config, kind=kind, image=image)
    strategy_for(run, config)  # a bad search space is reported now, before anything trains
    return run, config
