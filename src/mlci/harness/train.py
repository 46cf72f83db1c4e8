"""The training harness (`mlci train --trial-dir DIR --model FILE`): what runs inside a container.

It trains and never decides: read the trial's spec (hparams.json: hyperparameters, metric, data set,
seed, [data] options, the pruning link; nothing comes from argv or the environment), build, fit with checkpoints, evaluate, write
metrics.json and the model. A killed trial started again resumes from its last epoch.
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import random
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from mlci.harness.common import Echo, Heartbeat, passive_openmp, user_line
from mlci.harness.data import Dataset, load_dataset
from mlci.source.detect import check_coding
from mlci.core.errors import TrialError, UsageError
from mlci.core.knobs import default as knob_default
from mlci.runners.local import EXIT_FILE
from mlci.core.store import CRASH_FILE, STOP_FILE, MetricsRecord, TrialSpec, read_record, write_json
from mlci.core.workarea import model_in_work, work_dir



# ----------------------------------------------------------------------------- the user's module


def shown(model_file: Path) -> str:
    """The model file as messages name it: relative to the trial's work area (its cwd) when inside it."""
    try:
        return Path(model_file).resolve().relative_to(Path.cwd().resolve()).as_posix()
    except (ValueError, OSError):
        return str(model_file)


def load_module(model_file: Path) -> ModuleType:
    """Import the user's model file by path, in its own folder, as a fresh module."""
    if not model_file.is_file():
        raise UsageError(f"{shown(model_file)}: model file not found", hint="pass the path of a .py file")
    check_coding(model_file.read_bytes(), model_file.name)  # the line detection gives for the same file
    folder = str(model_file.parent.resolve())
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(f"mlci_user_{model_file.stem}", model_file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # a class defined in the model file can be pickled (checkpoints, joblib)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        raise TrialError(f"{shown(model_file)}:{exc.lineno}: syntax error ({exc.msg})", hint="fix the model file") from None
    except Exception as exc:  # the user's code failed at import time
        raise TrialError(f"{shown(model_file)}:{user_line(exc, model_file)}: importing the model failed "
                         f"({type(exc).__name__}: {exc})", hint="fix the model file; the traceback is in the trial log") from exc
    return module



def check_hparams(hparams: dict[str, Any], defaults: dict[str, Any], source: Path) -> dict[str, Any]:
    """Values must have the type of the module's HPARAMS default (an int where an int is expected)."""
    checked = dict(hparams)
    for key, value in hparams.items():
        if key not in defaults or defaults[key] is None or value is None:
            continue
        default = defaults[key]
        expected = type(default)
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, int):
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif isinstance(default, float):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            if ok:
                checked[key] = float(value)
        elif isinstance(default, (list, tuple)):
            ok = isinstance(value, (list, tuple))
        else:
            ok = isinstance(value, expected)
        if not ok:
            raise UsageError(f"{source}: hparam '{key}' = {value!r} has the wrong type; expected "
                             f"{expected.__name__} like the model's default {default!r}",
                             hint="fix the value or rewrite it with `mlci tweak`")
    return checked


# ----------------------------------------------------------------------------- training


class TrainContext:
    def __init__(self, trial_dir: Path, hp: dict[str, Any], data: Dataset, seed: int, metric: str,
                 heartbeat: Heartbeat, echo: Echo):
        self.trial_dir = trial_dir
        self.hp = hp
        self.data = data
        self.seed = seed
        self.metric = metric
        self.heartbeat = heartbeat
        self.echo = echo
        self.checkpoints = trial_dir / "checkpoints"
        self.epoch_log = self.checkpoints / "epochs.jsonl"
        self.reporter: Any = None  # mlci.tuning.pruning.Reporter when the trial belongs to a study that prunes
        self.stop_requested = False  # mlci asked to end training after this epoch (the run's max_minutes)

    def logged_epochs(self) -> list[dict[str, Any]]:
        """Epochs already done in an earlier, interrupted attempt (one JSON line per epoch)."""
        if not self.epoch_log.exists():
            return []
        rows = []
        for line in self.epoch_log.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line torn by a kill: everything after it is unreliable
        return rows

    def log_epoch(self, epoch: int, logs: dict[str, float]) -> None:
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        row = {"epoch": epoch, **{k: float(v) for k, v in logs.items()}}
        with open(self.epoch_log, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        self.heartbeat.epoch = epoch + 1
        self.heartbeat.value = row.get("val_accuracy", row.get("accuracy"))
        shown = " ".join(f"{k}={v:.4f}" for k, v in row.items() if k != "epoch")
        self.echo(f"epoch {epoch + 1}/{self.heartbeat.epochs}: {shown}")
        if stop_asked(self.trial_dir) and not self.stop_requested:
            self.stop_requested = True
            self.echo(f"mlci: stopping after epoch {epoch + 1}: {stop_asked(self.trial_dir)}")
        if self.reporter is not None:
            self.reporter.epoch_end(epoch, row)

    def truncate_epoch_log(self, keep: int) -> None:
        self.write_epoch_log(self.logged_epochs()[:keep])

    def write_epoch_log(self, rows: list[dict[str, Any]]) -> None:
        """The epoch log holds exactly these rows (what a checkpoint says was done)."""
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        self.epoch_log.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _is_keras_model(model: Any) -> bool:
    keras = sys.modules.get("keras")
    return keras is not None and isinstance(model, keras.Model)


def _train_keras(model: Any, ctx: TrainContext) -> MetricsRecord:
    import keras

    from mlci.harness import keras_fit as keras_support

    return keras_support.train(model, ctx, keras)


def _is_torch_module(model: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(model, torch.nn.Module)


def _train_torch(model: Any, ctx: TrainContext, module: ModuleType, device: Any) -> MetricsRecord:
    import torch

    from mlci.harness import torch_fit

    return torch_fit.train(model, ctx, torch, module, device)


def _train_sklearn(estimator: Any, ctx: TrainContext) -> MetricsRecord:
    from mlci.harness import sklearn_fit as sklearn_support

    return sklearn_support.train(estimator, ctx)


def read_spec(trial_dir: Path) -> TrialSpec:
    """The trial's spec (trials/<n>/hparams.json): the one place the harness learns what to train."""
    return read_record(Path(trial_dir) / "hparams.json", TrialSpec, what="hparams.json",
                       fix="write it with `mlci tweak` (or `mlci run`)")


def train_trial(trial_dir: Path, model_file: Path, *, echo: Echo = print) -> MetricsRecord | None:
    """Train one trial of a model module as its spec says; write metrics.json and the model into trial_dir.

    A trial the study's pruner stops writes pruned.json instead of metrics.json and returns None.
    """
    started = time.perf_counter()
    trial_dir = Path(trial_dir)
    passive_openmp()
    if _is_script(Path(model_file)):
        from mlci.harness.script import train_script

        return train_script(trial_dir, Path(model_file), echo=echo)
    model_file = model_in_work(trial_dir, Path(model_file))  # a direct `mlci train` copies the folder here too
    with contextlib.chdir(work_dir(trial_dir)):  # the trial's own copy is its cwd, never the user's folder
        return _train_module(trial_dir, model_file, started, echo)


def _train_module(trial_dir: Path, model_file: Path, started: float, echo: Echo) -> MetricsRecord | None:
    record = read_spec(trial_dir)
    metric, dataset = record.metric, record.dataset
    (trial_dir / "metrics.json").unlink(missing_ok=True)  # a retrained trial never shows stale metrics
    (trial_dir / "pruned.json").unlink(missing_ok=True)
    imported = time.perf_counter()
    module = load_module(model_file)
    import_seconds = time.perf_counter() - imported
    build = getattr(module, "build_model", None)
    if not callable(build):
        raise TrialError(f"{shown(model_file)}: no build_model(hp) function",
                         hint="define build_model(hp) returning a Keras model, a PyTorch nn.Module or a "
                              "scikit-learn estimator "
                              "(or run it as a plain script, which mlci supports in script mode)")
    defaults = dict(getattr(module, "HPARAMS", {}) or {})
    hp = {**defaults, **check_hparams(record.hparams, defaults, trial_dir / "hparams.json")}
    seed = int(hp.get("seed", record.seed))
    random.seed(seed)  # every stream from the trial's seed: a fresh process and a warm worker's fork train alike
    np.random.seed(seed)
    loaded = time.perf_counter()
    data = _load_data(module, dataset, seed, model_file)
    data_seconds = time.perf_counter() - loaded
    echo(f"trial {record.trial}: {model_file.name} with {json.dumps(hp, sort_keys=True)}")
    with Heartbeat(trial_dir) as heartbeat:
        heartbeat.epochs = int(hp.get("epochs", knob_default("epochs")))
        ctx = TrainContext(trial_dir, hp, data, seed, metric, heartbeat, echo)
        reporter = None
        if record.optuna is not None:
            from mlci.tuning.pruning import Reporter, TrialPruned

            reporter = ctx.reporter = Reporter.from_hparams({"optuna": record.optuna_link()}, echo)
        if _wants_keras(module):
            import keras

            keras.utils.set_random_seed(seed)
        device = None
        if "torch" in sys.modules:  # the module imported PyTorch: its weights start from the trial's seed
            import torch

            from mlci.harness.torch_fit import configure

            device = configure(torch)
            torch.manual_seed(seed)
        try:
            model = build(hp)
        except Exception as exc:
            raise TrialError(f"{shown(model_file)}:{user_line(exc, model_file)}: build_model raised "
                             f"{type(exc).__name__}: {exc}", hint="fix build_model; the traceback is in the trial log") from exc
        try:
            if _is_keras_model(model):
                metrics = _train_keras(model, ctx)
            elif _is_torch_module(model):
                metrics = _train_torch(model, ctx, module, device)
            elif hasattr(model, "fit") and hasattr(model, "predict"):
                metrics = _train_sklearn(model, ctx)
            else:
                raise TrialError(f"{shown(model_file)}: build_model returned {type(model).__name__}, not a Keras model, "
                                 f"a PyTorch nn.Module or a scikit-learn estimator",
                                 hint="return keras.Model, torch.nn.Module or an estimator with fit/predict")
        except Exception as exc:
            if reporter is None or not isinstance(exc, TrialPruned):
                raise
            reporter.write(trial_dir, record.trial, exc)
            echo(f"trial {record.trial}: pruned at epoch {exc.epoch} ({reporter.key} {exc.value:.4f}): "
                 f"below the study's other trials at that epoch")
            return None
    metrics.trial = record.trial
    metrics.metric = metric
    metrics.import_seconds = round(import_seconds, 3)
    metrics.data_seconds = round(data_seconds, 3)
    metrics.harness_seconds = round(time.perf_counter() - started, 3)
    write_json(trial_dir / "metrics.json", metrics)
    echo(f"trial {record.trial}: {metric} = {metrics.value:.4f} "
         f"({metrics.epochs_done} epochs, fit {metrics.train_seconds:.1f}s)")
    return metrics


def _is_script(model_file: Path) -> bool:
    """No build_model(hp): script mode (decided from the source: importing a script would run it)."""
    from mlci.source.mode import is_script

    try:
        return is_script(model_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return False  # load_module reports the unreadable file


def _wants_keras(module: ModuleType) -> bool:
    return "keras" in sys.modules or "tensorflow" in sys.modules


def _load_data(module: ModuleType, dataset: str | None, seed: int, model_file: Path) -> Dataset:
    loader = getattr(module, "load_data", None)
    if callable(loader) and dataset in (None, "module"):
        try:
            (x_train, y_train), (x_test, y_test) = loader()
        except Exception as exc:
            raise TrialError(f"{shown(model_file)}:{user_line(exc, model_file)}: load_data() raised "
                             f"{type(exc).__name__}: {exc}", hint="fix load_data, or set dataset in mlci.toml") from exc
        y_train, y_test = np.asarray(y_train), np.asarray(y_test)
        return Dataset("module", np.asarray(x_train), y_train, np.asarray(x_test), y_test,
                       int(max(y_train.max(), y_test.max()) + 1) if y_train.ndim == 1 else y_train.shape[-1])
    if dataset == "module":
        raise UsageError(f"{shown(model_file)}: dataset = \"module\" but the file has no load_data()",
                         hint="define load_data() or choose mnist-sample / digits / mnist")
    return load_dataset(dataset or "mnist-sample", seed)


def finish_marker(trial_dir: Path, code: int) -> None:
    """Leave the exit code where a runner that is not our parent can read it."""
    try:
        (trial_dir / EXIT_FILE).write_text(f"{code}\n")
    except OSError:
        pass


def record_crash(trial_dir: Path, exc: BaseException) -> None:
    """An uncaught exception ends the harness: what crashed, so that the lifecycle can tell a
    deterministic failure (an import error, the same exception twice) from a transient one."""
    try:
        write_json(Path(trial_dir) / CRASH_FILE, {"type": type(exc).__name__,
                                                  "message": " ".join(str(exc).split())[:300]})
    except OSError:
        pass  # the traceback in the log is the fallback


def stop_asked(trial_dir: Path) -> str | None:
    """Why mlci asks this trial to end after the epoch it is in (trials/<n>/stop), or None."""
    try:
        return (Path(trial_dir) / STOP_FILE).read_text(encoding="utf-8").strip() or "asked to stop"
    except OSError:
        return None
