"""Script mode of the harness: run an unmodified script (no build_model) and capture its metric.

The script runs as `__main__` with its own sys.argv, in a work folder that mirrors its own;
Keras fit/evaluate are hooked (checkpoints for resuming, results for the metric) before it starts.
"""
from __future__ import annotations

import collections
import io
import json
import math
import os
import re
import runpy
import shutil
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from mlci.core.errors import MetricsError, TrialError, UsageError
from mlci.core.store import MetricsRecord, TrialSpec, read_record, write_json
from mlci.harness.common import Echo, Heartbeat, history as epoch_history, user_line, versions as package_versions
ACCURACY_FILES = ("accuracy.txt", "result.txt", "new_accuracy.txt")
SCRIPT_METRICS = "metrics.json"
SMALL_FILE = 1 << 20  # files up to this size are copied into the work folder; larger ones are linked
NEVER_MIRRORED = {".git", ".mlci", "__pycache__", ".ipynb_checkpoints"}
NUMBER = r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?"
STDOUT_ACCURACY = re.compile(r"(?i)acc(?:uracy)?\b[^0-9\n]{0,30}?(" + NUMBER + r")\s*(%)?")
KERAS_ACCURACY_KEYS = ("accuracy", "acc", "sparse_categorical_accuracy", "categorical_accuracy", "binary_accuracy",
                       "compile_metrics")


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


def mirror_folder(source_dir: Path, work: Path, skip: set[str]) -> None:
    """A work folder that looks like the script's own: small files copied, the rest linked.

    Relative reads (data files, a hyperparameter file) find what they expect; writes (accuracy.txt,
    a saved model) land in the trial, never in the user's folder, which may be mounted read-only.
    """
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    work_resolved = work.resolve()
    for entry in sorted(source_dir.iterdir()):
        if entry.name in skip or entry.name in NEVER_MIRRORED:
            continue
        resolved = entry.resolve()
        if work_resolved == resolved or resolved in work_resolved.parents:
            continue  # the run store lives inside the model folder: don't mirror it into itself
        target = work / entry.name
        try:
            if entry.is_file() and entry.stat().st_size <= SMALL_FILE:
                shutil.copy2(entry, target)
            else:
                target.symlink_to(resolved, target_is_directory=entry.is_dir())
        except OSError:
            continue  # an unreadable entry: the script fails on it itself if it needs it


# ----------------------------------------------------------------------------- hooks


class Tee(io.TextIOBase):
    """Passes the script's output through and keeps its last lines for the metric search."""

    def __init__(self, stream, keep: int = 4000):
        self.stream = stream
        self.lines: collections.deque[str] = collections.deque(maxlen=keep)
        self._partial = ""

    def write(self, text: str) -> int:
        self.stream.write(text)
        data = self._partial + text
        parts = re.split(r"[\r\n]", data)
        self._partial = parts.pop()
        self.lines.extend(p for p in parts if p.strip())
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return False

    @property
    def encoding(self):
        return getattr(self.stream, "encoding", "utf-8")

    def fileno(self) -> int:
        return self.stream.fileno()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)  # buffer, errors, reconfigure, ... as the real stream has them

    def all_lines(self) -> list[str]:
        return list(self.lines) + ([self._partial] if self._partial.strip() else [])


@dataclass
class KerasCapture:
    """What the hooked Keras calls saw: the last result, the last model, checkpoint facts."""

    last: tuple[str, dict[str, float]] | None = None  # ("keras-evaluate" | "keras-fit", logs)
    model: Any = None
    fits: int = 0
    resumed_from_epoch: int | None = None
    history: dict[str, list[float]] = field(default_factory=dict)
    epochs_done: int = 0
    depth: int = 0  # > 0 inside fit: its validation evaluate is not the script's own


def install_keras_hooks(keras: Any, trial_dir: Path, capture: KerasCapture, heartbeat: Any, echo: Echo):
    """Wrap keras.Model.fit/evaluate: BackupAndRestore per fit, epochs to the heartbeat, results kept."""
    from mlci.harness.keras_fit import _checkpoint_epoch

    original_fit, original_evaluate = keras.Model.fit, keras.Model.evaluate
    checkpoints = trial_dir / "checkpoints"

    def _callbacks(args: tuple, kwargs: dict, position: int) -> tuple[list, tuple, dict]:
        if len(args) > position:
            found = list(args[position] or [])
            args = args[:position] + (found,) + args[position + 1:]
        else:
            found = list(kwargs.get("callbacks") or [])
            kwargs["callbacks"] = found
        return found, args, kwargs

    def fit(self, *args, **kwargs):
        if capture.depth:
            return original_fit(self, *args, **kwargs)
        capture.fits += 1
        number = capture.fits
        backup_dir = checkpoints / f"keras-fit-{number}"
        epoch_log = checkpoints / f"keras-fit-{number}.jsonl"
        callbacks, args, kwargs = _callbacks(args, dict(kwargs), 5)
        resumed = 0
        if not any(isinstance(c, keras.callbacks.BackupAndRestore) for c in callbacks):
            resumed = _checkpoint_epoch(backup_dir)
            callbacks.append(keras.callbacks.BackupAndRestore(backup_dir=str(backup_dir), save_freq="epoch",
                                                              double_checkpoint=True, delete_checkpoint=False))
        rows = _read_rows(epoch_log)[:resumed]
        checkpoints.mkdir(parents=True, exist_ok=True)
        epoch_log.write_text("".join(json.dumps(r) + "\n" for r in rows))
        if resumed:
            capture.resumed_from_epoch = resumed
            echo(f"mlci: fit #{number} resumes from its checkpoint after epoch {resumed}")
        epochs = kwargs.get("epochs", args[3] if len(args) > 3 else 1)
        heartbeat.epochs = epochs if isinstance(epochs, int) else None

        class EpochLog(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                row = {"epoch": epoch, **{k: float(v) for k, v in (logs or {}).items() if _is_number(v)}}
                with open(epoch_log, "a", encoding="utf-8") as handle:
                    handle.write(json.dumps(row) + "\n")
                heartbeat.epoch = epoch + 1
                heartbeat.value = row.get("val_accuracy", row.get("accuracy"))

        callbacks.append(EpochLog())
        capture.depth += 1
        try:
            result = original_fit(self, *args, **kwargs)
        finally:
            capture.depth -= 1
        rows = _read_rows(epoch_log)
        _full_history(result, rows)
        capture.model = self
        capture.history = epoch_history(rows)
        capture.epochs_done = len(rows)
        if rows:
            capture.last = ("keras-fit", {k: v for k, v in rows[-1].items() if k != "epoch"})
        return result

    def evaluate(self, *args, **kwargs):
        if capture.depth:
            return original_evaluate(self, *args, **kwargs)
        seen: dict[str, float] = {}

        class Keep(keras.callbacks.Callback):
            def on_test_end(self, logs=None):
                seen.update({k: float(v) for k, v in (logs or {}).items() if _is_number(v)})

        callbacks, args, kwargs = _callbacks(args, dict(kwargs), 6)
        callbacks.append(Keep())
        capture.depth += 1
        try:
            result = original_evaluate(self, *args, **kwargs)
        finally:
            capture.depth -= 1
        capture.model = self
        if seen:
            capture.last = ("keras-evaluate", seen)
        return result

    keras.Model.fit, keras.Model.evaluate = fit, evaluate

    def remove() -> None:
        keras.Model.fit, keras.Model.evaluate = original_fit, original_evaluate

    return remove


def _full_history(history: Any, rows: list[dict[str, Any]]) -> None:
    """The History a script reads covers every epoch, those before a resume too, as numpy scalars.

    A resumed fit reports only the epochs it ran (none when it had finished before the kill), and
    Keras 3 keeps Python floats where Keras 2 kept numpy scalars (scripts call np.array2string on them).
    """
    import numpy as np

    if not hasattr(history, "history") or not rows:
        return
    history.history = {key: [np.float64(v) for v in values] for key, values in epoch_history(rows).items()}
    history.epoch = [int(row.get("epoch", i)) for i, row in enumerate(rows)]


def _is_number(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _read_rows(path: Path) -> list[dict[str, Any]]:
    rows = []
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return rows
    for line in text.splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a line torn by a kill
    return rows


def install_keras2_compat(keras: Any, echo: Echo) -> Callable[[], None]:
    """What Keras 2 scripts still write and Keras 3 refuses: keras.utils.np_utils, Adam(lr=...), decay=."""
    from keras.src.optimizers import base_optimizer

    sys.modules.setdefault("keras.utils.np_utils", keras.utils)
    had_np_utils = hasattr(keras.utils, "np_utils")
    if not had_np_utils:
        keras.utils.np_utils = keras.utils
    original_init = base_optimizer.BaseOptimizer.__init__

    def init(self, *args, **kwargs):
        if "lr" in kwargs:
            rate = kwargs.pop("lr")
            if args:
                args = (rate,) + args[1:]
            else:
                kwargs["learning_rate"] = rate
        if "decay" in kwargs:
            echo(f"mlci: note: the optimizer's decay={kwargs.pop('decay')!r} (Keras 2) is ignored by Keras 3")
        return original_init(self, *args, **kwargs)

    base_optimizer.BaseOptimizer.__init__ = init

    def remove() -> None:
        base_optimizer.BaseOptimizer.__init__ = original_init
        if sys.modules.get("keras.utils.np_utils") is keras.utils:
            del sys.modules["keras.utils.np_utils"]
        if not had_np_utils:
            del keras.utils.np_utils

    return remove


def redirect_accuracy_writes(work: Path, names: set[str], echo: Echo) -> Callable[[], None]:
    """open("/root/ws/accuracy.txt", "w") in a script made for one machine writes into the work folder instead."""
    import builtins

    original_open = builtins.open

    def patched_open(file, mode="r", *args, **kwargs):
        if (isinstance(file, (str, os.PathLike)) and isinstance(mode, str) and any(c in mode for c in "wax+")
                and os.path.isabs(file) and os.path.basename(file) in names):
            path = Path(file)
            if path.parent.resolve() != work.resolve():
                echo(f"mlci: {path} is written to {work / path.name} (the trial's work folder)")
                file = work / path.name
        return original_open(file, mode, *args, **kwargs)

    builtins.open = patched_open

    def remove() -> None:
        builtins.open = original_open

    return remove


def mnist_arrays(spec: str, folder: Path, seed: int = 0):
    """MNIST as keras.datasets.mnist.load_data() returns it (uint8 images 28x28), from a local copy."""
    import numpy as np

    if spec == "mnist-sample":
        from mlci.harness.data import _mnist_sample_arrays, _stratified_split

        x, y = _mnist_sample_arrays()
        x_train, x_test, y_train, y_test = _stratified_split(x.reshape(-1, 28, 28).astype("uint8"),
                                                             y.astype("uint8"), 1000, seed)
        return (x_train, y_train), (x_test, y_test)
    path = Path(spec) if Path(spec).is_absolute() else folder / spec
    try:
        with np.load(path, allow_pickle=False) as data:
            return (data["x_train"], data["y_train"]), (data["x_test"], data["y_test"])
    except (OSError, KeyError, ValueError) as exc:
        raise UsageError(f"[data] serve_keras_mnist = {spec!r}: {path} is not a readable MNIST .npz "
                         f"({type(exc).__name__}: {exc})",
                         hint="give \"mnist-sample\" or an .npz with x_train, y_train, x_test, y_test") from None


def serve_keras_mnist(spec: str, folder: Path, seed: int) -> Callable[[], None]:
    """keras.datasets.mnist.load_data() returns the local copy (no network needed)."""
    import importlib

    arrays = mnist_arrays(spec, folder, seed)  # fail early on a bad path, before the script starts

    def load_data(path: str = "mnist.npz"):
        return arrays

    patched = []
    for name in ("keras.datasets.mnist", "keras.src.datasets.mnist", "keras._tf_keras.keras.datasets.mnist"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(module, "load_data"):
            patched.append((module, module.load_data))
            module.load_data = load_data

    def remove() -> None:
        for module, original in patched:
            module.load_data = original

    return remove


# ----------------------------------------------------------------------------- the metric


@dataclass
class Found:
    value: float
    source: str
    accuracy: float | None = None
    loss: float | None = None


def _fraction(value: float, percent: bool) -> float | None:
    """97.3 or 97.3% -> 0.973; a value over 100 is no accuracy."""
    if percent or 1.0 < value <= 100.0:
        value = value / 100.0
    return value if 0.0 <= value <= 1.0 else None


def _from_logs(logs: dict[str, float], metric: str, prefer_val: bool) -> Found | None:
    loss = logs.get("val_loss" if prefer_val and "val_loss" in logs else "loss")
    accuracy = None
    for prefix in (("val_", "") if prefer_val else ("",)):
        accuracy = next((logs[prefix + k] for k in KERAS_ACCURACY_KEYS if prefix + k in logs), None)
        if accuracy is not None:
            break
    value = {"loss": loss}.get(metric, accuracy) if metric in ("loss", "accuracy", "val_accuracy") else logs.get(metric)
    return None if value is None else Found(float(value), "", accuracy, loss)


def _from_script_metrics(path: Path, metric: str) -> Found | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if isinstance(data, (int, float)) and not isinstance(data, bool):
        data = {metric: data}
    if not isinstance(data, dict):
        return None
    candidates = [metric, "value", "val_accuracy", "accuracy", "acc", "test_accuracy"] if metric != "loss" else ["loss"]
    for key in candidates:
        if _is_number(data.get(key)) and not isinstance(data.get(key), bool):
            value = float(data[key])
            if metric in ("accuracy", "val_accuracy"):
                value = _fraction(value, False)
                if value is None:
                    continue
            return Found(value, SCRIPT_METRICS, accuracy=value if metric != "loss" else None,
                         loss=float(data["loss"]) if _is_number(data.get("loss")) else None)
    return None


def _from_file(path: Path) -> float | None:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    match = re.search(NUMBER, text)
    if not match:
        return None
    return _fraction(float(match.group()), "%" in text[match.end():match.end() + 3])


def _from_stdout(lines: list[str]) -> float | None:
    for line in reversed(lines):
        matches = list(STDOUT_ACCURACY.finditer(line))
        for match in reversed(matches):
            value = _fraction(float(match.group(1)), bool(match.group(2)))
            if value is not None:
                return value
    return None


def capture_metric(work: Path, started: float, metric: str, keras_capture: KerasCapture | None,
                   output: list[str], accuracy_files: list[str]) -> Found:
    """The script's metric, from the most trustworthy source that has one (docs/scripts.md gives the order)."""
    own = work / SCRIPT_METRICS
    if own.exists() and own.stat().st_mtime >= started - 1:
        found = _from_script_metrics(own, metric)
        if found:
            return found
    last = keras_capture.last if keras_capture else None
    if last and last[0] == "keras-evaluate":
        found = _from_logs(last[1], metric, False)
        if found:
            found.source = "keras-evaluate"
            return found
    if last and last[0] == "keras-fit" and any(k.startswith("val_") for k in last[1]):
        found = _from_logs(last[1], metric, True)
        if found:
            found.source = "keras-fit (validation)"
            return found
    if metric in ("accuracy", "val_accuracy"):
        for name in [*ACCURACY_FILES, *accuracy_files]:
            path = work / name
            if path.is_file() and path.stat().st_mtime >= started - 1:
                value = _from_file(path)
                if value is not None:
                    return Found(value, f"file:{name}", accuracy=value)
        value = _from_stdout(output)
        if value is not None:
            return Found(value, "stdout", accuracy=value)
    if last and last[0] == "keras-fit":
        found = _from_logs(last[1], metric, False)
        if found:
            found.source = "keras-fit (training)"
            return found
    names = ", ".join([*ACCURACY_FILES, *accuracy_files])
    raise MetricsError(
        f"the script ran to the end but reported no {metric} that mlci can read; report it one of three ways: "
        f"(1) write {SCRIPT_METRICS} in the script's folder, e.g. {{\"{metric}\": 0.97}}; "
        f"(2) print a line such as 'accuracy: 0.97' (or 97.0%); (3) write the number to one of {names} "
        f"(more names: accuracy_files in [data] of mlci.toml)",
        hint="a Keras model's evaluate() or fit(validation_data=...) is read automatically")


# ----------------------------------------------------------------------------- running it


def _uses_keras(source: str) -> bool:
    return bool(re.search(r"^\s*(?:import|from)\s+(?:keras|tensorflow|tf_keras)\b", source, re.MULTILINE))


def _save_artifact(trial_dir: Path, capture: KerasCapture | None, namespace: dict[str, Any], echo: Echo) -> None:
    try:
        if capture is not None and capture.model is not None:
            capture.model.save(trial_dir / "model.keras")
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
    record = read_record(trial_dir / "hparams.json", TrialSpec, what="hparams.json",
                         fix="write it with `mlci tweak` (or `mlci run`)")
    (trial_dir / "metrics.json").unlink(missing_ok=True)
    settings, metric = record.data, record.metric
    source, diff = prepare_copy(trial_dir, script, record.hparams)
    echo(f"trial {record.trial}: script {script.name} with {json.dumps(record.hparams, sort_keys=True)}")
    if diff:
        echo(f"trial {record.trial}: runs a rewritten copy (trials/{record.trial}/model.py):\n{diff.rstrip()}")
    work = trial_dir / "work"
    skip = {script.name, SCRIPT_METRICS, *ACCURACY_FILES, *(Path(n).parts[0] for n in settings.accuracy_files)}
    mirror_folder(script.parent, work, skip)
    runnable = work / script.name
    runnable.write_text(source, encoding="utf-8")

    seed = int(record.hparams.get("seed", record.seed))
    os.environ.setdefault("MPLBACKEND", "Agg")  # plt.show() in a script must not wait for a window
    removers: list[Callable[[], None]] = []
    capture: KerasCapture | None = None
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
                                 hint="the traceback is in the trial log") from exc
            train_seconds = time.perf_counter() - run_started
        finally:
            sys.stdout = saved[3]
            os.chdir(saved[0])
            sys.argv[:] = saved[1]
            sys.path[:] = saved[2]
            for remove in reversed(removers):
                remove()
        found = capture_metric(work, started, metric, capture, tee.all_lines(), settings.accuracy_files)
        _save_artifact(trial_dir, capture, namespace, echo)
    for leftover in (trial_dir / "checkpoints").glob("keras-fit-*"):
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)  # the trial is done: resuming it is no longer needed
    framework = "keras" if capture is not None else "sklearn" if "sklearn" in source else None
    metrics = MetricsRecord(trial=record.trial, metric=metric, value=found.value, accuracy=found.accuracy,
                            loss=found.loss, history=capture.history if capture else {},
                            epochs_done=capture.epochs_done if capture else 1,
                            resumed_from_epoch=capture.resumed_from_epoch if capture else None,
                            train_seconds=round(train_seconds, 3), framework=framework, source=found.source,
                            import_seconds=round(time.perf_counter() - started_clock - train_seconds, 3),
                            versions=package_versions("keras", "tensorflow", "scikit-learn", "numpy"))
    write_json(trial_dir / "metrics.json", metrics)
    echo(f"trial {record.trial}: {metric} = {metrics.value:.4f} (from {found.source}; script ran "
         f"{train_seconds:.1f}s)")
    return metrics
