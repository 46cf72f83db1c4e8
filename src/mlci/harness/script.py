"""Script mode of the harness: run an unmodified script (no build_model) and capture its metric.

The script runs as `__main__` with its own sys.argv, in the trial's own copy of its folder (trials/<n>/work);
Keras fit/evaluate are hooked (checkpoints for resuming, results for the metric) before it starts. A PyTorch
script is seeded and made deterministic; Lightning's Trainer.fit is hooked for checkpoints, and a plain
PyTorch loop has none: a killed trial trains again from the start.
"""
from __future__ import annotations

import json
import os
import re
import runpy
import shutil
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from mlci.core.errors import TrialError, UsageError
from mlci.core.store import MetricsRecord, TrialSpec, read_record, write_json
from mlci.core.workarea import model_in_work, work_dir
from mlci.source.detect import check_coding
from mlci.harness.common import Echo, Heartbeat, user_line, versions as package_versions

from mlci.harness.script_hooks import (KerasCapture, Tee, flush_open_files, install_keras2_compat,
                                       install_keras_hooks, install_lightning_hooks, offline_dataset_hint,
                                       redirect_accuracy_writes, serve_keras_mnist)
from mlci.harness.script_metric import ACCURACY_FILES, SCRIPT_METRICS, capture_metric

VERSIONS = ("keras", "tensorflow", "torch", "scikit-learn", "numpy")  # in metrics.json; a warm worker reads them before it forks



# ----------------------------------------------------------------------------- the rewritten copy


def prepare_copy(trial_dir: Path, script: Path, hparams: dict[str, Any]) -> tuple[str, str]:
    """The source this trial runs: the script itself, or a copy rewritten with the trial's knobs.

    Writes trials/<n>/model.py and model.diff when the knobs differ from the script's literals.
    Returns (source, diff); the original file is never written.
    """
    from mlci.source.rewrite import rewrite, scan

    source = script.read_text(encoding="utf-8")
    found = scan(source, script.name)
    wanted = {k: v for k, v in hparams.items() if k != "seed"}
    baseline = found.hparams()
    for stale in ("model.py", "model.diff"):
        (trial_dir / stale).unlink(missing_ok=True)
    if all(baseline.get(k) == v for k, v in wanted.items()):
        return source, ""
    if found.error:
        raise TrialError(f"{found.error}: the trial asks for {json.dumps(wanted, sort_keys=True)} but mlci cannot "
                         f"rewrite this file", hint="train it unchanged, or fix the syntax")
    try:
        result = rewrite(source, wanted, script.name, f"trials/{trial_dir.name}/model.py")
    except UsageError as err:
        raise TrialError(err.message, hint=err.hint) from None
    (trial_dir / "model.py").write_text(result.source, encoding="utf-8")
    (trial_dir / "model.diff").write_text(result.diff, encoding="utf-8")
    return result.source, result.diff


def drop_stale_results(work: Path, names: set[str]) -> None:
    """Result files copied from the user's folder (an old accuracy.txt) must not pass for this trial's metric."""
    for name in names:
        stale = work / name
        if stale.is_file() or stale.is_symlink():
            stale.unlink()
        elif stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)


# ----------------------------------------------------------------------------- running it


def _uses_keras(source: str) -> bool:
    return bool(re.search(r"^\s*(?:import|from)\s+(?:keras|tensorflow|tf_keras)\b", source, re.MULTILINE))


def _uses_torch(source: str) -> bool:
    return bool(re.search(r"^\s*(?:import|from)\s+(?:torch|pytorch_lightning|lightning)\b", source, re.MULTILINE))


def _uses_lightning(source: str) -> bool:
    return bool(re.search(r"^\s*(?:import|from)\s+(?:pytorch_lightning|lightning)\b", source, re.MULTILINE))


def _torch_model(namespace: dict[str, Any]) -> Any:
    """The network a PyTorch script trained: its `model`, else the last nn.Module it left at the top level."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    found = [v for v in namespace.values() if isinstance(v, torch.nn.Module)]
    named = namespace.get("model")
    return named if isinstance(named, torch.nn.Module) else (found[-1] if found else None)


def _save_artifact(trial_dir: Path, capture: KerasCapture | None, namespace: dict[str, Any], echo: Echo) -> None:
    try:
        if capture is not None and capture.model is not None:
            capture.model.save(trial_dir / "model.keras")
            return
        network = _torch_model(namespace)
        if network is not None:
            import torch

            torch.save(network.state_dict(), trial_dir / ".model.pt.tmp")
            os.replace(trial_dir / ".model.pt.tmp", trial_dir / "model.pt")
            return
        import joblib

        fitted = [v for v in namespace.values() if hasattr(v, "get_params") and hasattr(v, "predict")
                  and any(k.endswith("_") and not k.startswith("_") for k in vars(v))]
        if fitted:
            tmp = trial_dir / ".model.joblib.tmp"
            joblib.dump(fitted[-1], tmp)
            os.replace(tmp, trial_dir / "model.joblib")
    except Exception as exc:  # the metric matters more than the artifact
        echo(f"mlci: warning: the trained model could not be saved ({type(exc).__name__}: {exc})")


def train_script(trial_dir: Path, script: Path, *, echo: Echo = print) -> MetricsRecord:
    """Run one trial of a plain script as its spec says; write metrics.json (and the model when it can be found)."""
    started_clock = time.perf_counter()
    trial_dir, script = Path(trial_dir).resolve(), Path(script).resolve()
    if not script.is_file():
        raise UsageError(f"{script}: model file not found", hint="pass the path of a .py file")
    check_coding(script.read_bytes(), script.name)  # the line detection gives for the same file
    record = read_record(trial_dir / "hparams.json", TrialSpec, what="hparams.json",
                         fix="write it with `mlci tweak` (or `mlci run`)")
    (trial_dir / "metrics.json").unlink(missing_ok=True)
    settings, metric = record.data, record.metric
    source, diff = prepare_copy(trial_dir, script, record.hparams)
    echo(f"trial {record.trial}: script {script.name} with {json.dumps(record.hparams, sort_keys=True)}")
    if diff:
        echo(f"trial {record.trial}: runs a rewritten copy (trials/{record.trial}/model.py):\n{diff.rstrip()}")
    # The script runs in the trial's own copy of its folder (made by the runner, or here for a direct
    # `mlci train`): relative reads find what they expect; every write (accuracy.txt, a rewritten data
    # file, a saved model) lands in the copy, never in the user's folder.
    runnable = model_in_work(trial_dir, script)
    work = work_dir(trial_dir)
    drop_stale_results(work, {SCRIPT_METRICS, *ACCURACY_FILES, *(Path(n).parts[0] for n in settings.accuracy_files)})
    runnable.write_text(source, encoding="utf-8")

    seed = int(record.hparams.get("seed", record.seed))
    os.environ.setdefault("MPLBACKEND", "Agg")  # plt.show() in a script must not wait for a window
    removers: list[Callable[[], None]] = []
    capture: KerasCapture | None = None
    lightning: KerasCapture | None = None  # what Lightning's hooked Trainer.fit saw (epochs, resume)
    saved = (os.getcwd(), list(sys.argv), list(sys.path), sys.stdout)
    tee = Tee(sys.stdout)
    namespace: dict[str, Any] = {}
    with Heartbeat(trial_dir) as heartbeat:
        try:
            import random

            random.seed(seed)
            try:
                import numpy as np

                np.random.seed(seed)
            except ImportError:
                pass
            if _uses_torch(source):  # seeded, deterministic, one thread per CPU it may use (as in module mode)
                import torch

                from mlci.harness.torch_fit import configure

                configure(torch)
                torch.manual_seed(seed)
                if _uses_lightning(source):
                    lightning = KerasCapture()
                    removers.append(install_lightning_hooks(trial_dir, lightning, heartbeat, echo))
            if _uses_keras(source):
                import keras

                keras.utils.set_random_seed(seed)
                capture = KerasCapture()
                removers.append(install_keras_hooks(keras, trial_dir, capture, heartbeat, echo))
                removers.append(install_keras2_compat(keras, echo))
                if settings.serve_keras_mnist:
                    removers.append(serve_keras_mnist(settings.serve_keras_mnist, script.parent, seed))
            removers.append(redirect_accuracy_writes(work, {SCRIPT_METRICS, *ACCURACY_FILES, *(
                Path(n).name for n in settings.accuracy_files)}, echo))
            os.chdir(work)
            sys.argv = [str(runnable)]
            sys.path.insert(0, str(work))
            sys.stdout = tee
            started = time.time()
            run_started = time.perf_counter()
            try:
                namespace = runpy.run_path(str(runnable), run_name="__main__")
            except SystemExit as exc:
                if exc.code not in (None, 0):
                    raise TrialError(f"{script.name}: the script exited with {exc.code!r}",
                                     hint="see the trial log") from None
            except SyntaxError as exc:
                raise TrialError(f"{script}:{exc.lineno}: syntax error ({exc.msg})", hint="fix the script") from None
            except (KeyboardInterrupt, MemoryError):
                raise
            except Exception as exc:
                traceback.print_exc()
                copy = f"trials/{record.trial}/model.py" if diff else script.name
                raise TrialError(f"{copy}:{user_line(exc, runnable)}: the script raised {type(exc).__name__}: "
                                 f"{str(exc).splitlines()[0][:300] if str(exc) else ''}",
                                 hint=offline_dataset_hint(exc) or "the traceback is in the trial log") from exc
            train_seconds = time.perf_counter() - run_started
        finally:
            flush_open_files(work)
            sys.stdout = saved[3]
            os.chdir(saved[0])
            sys.argv[:] = saved[1]
            sys.path[:] = saved[2]
            for remove in reversed(removers):
                remove()
        found = capture_metric(work, started, metric, capture, tee.all_lines(), settings.accuracy_files)
        _save_artifact(trial_dir, capture, namespace, echo)
    checkpoints = trial_dir / "checkpoints"
    for leftover in [*checkpoints.glob("keras-fit-*"), *checkpoints.glob("lightning-fit-*")]:
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)  # the trial is done: resuming it is no longer needed
    fitted = capture or lightning  # the epochs a hooked fit counted
    framework = ("keras" if capture is not None else "torch" if _uses_torch(source) else
                 "sklearn" if "sklearn" in source else None)
    metrics = MetricsRecord(trial=record.trial, metric=metric, value=found.value, accuracy=found.accuracy,
                            loss=found.loss, history=capture.history if capture else {},
                            epochs_done=fitted.epochs_done if fitted else 1,
                            resumed_from_epoch=fitted.resumed_from_epoch if fitted else None,
                            train_seconds=round(train_seconds, 3), framework=framework, source=found.source,
                            import_seconds=round(time.perf_counter() - started_clock - train_seconds, 3),
                            versions=package_versions(*VERSIONS))
    write_json(trial_dir / "metrics.json", metrics)
    echo(f"trial {record.trial}: {metric} = {metrics.value:.4f} (from {found.source}; script ran "
         f"{train_seconds:.1f}s)")
    return metrics
