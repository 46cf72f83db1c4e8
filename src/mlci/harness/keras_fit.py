"""Keras side of the harness: compile if needed, fit with BackupAndRestore, evaluate, save.

Resuming is exact: weights, optimizer state and epoch come back from the checkpoint, and every
random stream (dropout, shuffling) is re-seeded from (seed, epoch), so a killed and resumed
trial ends with the same weights as an uninterrupted one.
"""
from __future__ import annotations

import json
import os
import time
from typing import Any

import numpy as np

from mlci.core.errors import TrialError
from mlci.core.knobs import default as knob_default
from mlci.core.store import MetricsRecord
from mlci.harness.common import history as epoch_history, versions as package_versions

VERSIONS = ("keras", "tensorflow", "tensorflow-cpu", "numpy")  # in metrics.json; a warm worker reads them before it forks


def _compile_if_needed(model: Any, hp: dict[str, Any], keras: Any) -> None:
    if getattr(model, "compiled", False) or getattr(model, "optimizer", None) is not None:
        return
    name = str(hp.get("optimizer", knob_default("optimizer"))).lower()
    rate = float(hp.get("learning_rate", knob_default("learning_rate")))
    optimizers = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD, "rmsprop": keras.optimizers.RMSprop,
                  "adamw": keras.optimizers.AdamW, "nadam": keras.optimizers.Nadam}
    if name not in optimizers:
        raise TrialError(f"hparam 'optimizer' = {name!r} is unknown", hint=f"use one of {', '.join(optimizers)}")
    model.compile(optimizer=optimizers[name](learning_rate=rate), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])


def _labels_for(model: Any, y: np.ndarray, classes: int) -> np.ndarray:
    """One-hot labels when the user compiled with categorical (not sparse) cross-entropy."""
    loss = getattr(model, "loss", None)
    name = loss if isinstance(loss, str) else getattr(loss, "name", "") or type(loss).__name__
    name = str(name).lower()
    if y.ndim == 1 and "categorical" in name and "sparse" not in name:
        return np.eye(classes, dtype="float32")[y]
    return y


def _inputs_for(model: Any, x: np.ndarray) -> np.ndarray:
    """Flatten images for a model whose input is a flat vector (a dense network without Flatten)."""
    try:
        shape = model.inputs[0].shape
    except (AttributeError, IndexError, TypeError, ValueError):
        return x
    if len(shape) == 2 and x.ndim > 2:
        return x.reshape(len(x), -1)
    if len(shape) == 3 and x.ndim == 4 and x.shape[-1] == 1:
        return x[..., 0]
    return x


def _reseed(model: Any, seed: int, epoch: int, keras: Any) -> None:
    """Random streams depend only on (seed, epoch), never on how many epochs this process ran."""
    keras.utils.set_random_seed(seed * 10_007 + epoch)
    for layer in model._flatten_layers(include_self=True, recursive=True):
        for generator in getattr(layer, "_seed_generators", None) or []:
            state = getattr(generator, "state", None)
            if state is not None:
                state.assign(np.array([seed * 10_007 + epoch, 0], dtype=state.dtype))


def train(model: Any, ctx: Any, keras: Any) -> MetricsRecord:
    hp = ctx.hp
    _compile_if_needed(model, hp, keras)
    data = ctx.data
    x_train, x_test = _inputs_for(model, data.x_train), _inputs_for(model, data.x_test)
    y_train, y_test = _labels_for(model, data.y_train, data.classes), _labels_for(model, data.y_test, data.classes)
    epochs = int(hp.get("epochs", knob_default("epochs")))
    batch_size = int(hp.get("batch_size", knob_default("batch_size")))
    order = np.random.RandomState(ctx.seed).permutation(len(x_train))

    # Epochs the checkpoint holds; the epoch log is cut back to them (a kill can land between the two writes).
    backup_dir = ctx.checkpoints / "keras"
    resumed = usable_checkpoint(backup_dir, model, -(-len(x_train) // batch_size), ctx.echo)
    ctx.truncate_epoch_log(resumed)
    if resumed:
        ctx.echo(f"resuming from the checkpoint after epoch {resumed}")

    class EpochLog(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            _reseed(self.model, ctx.seed, epoch, keras)

        def on_epoch_end(self, epoch, logs=None):
            ctx.log_epoch(epoch, logs or {})
            if ctx.stop_requested:  # the checkpoint of this epoch is written (BackupAndRestore runs first)
                self.model.stop_training = True

    callbacks = [keras.callbacks.BackupAndRestore(backup_dir=str(backup_dir), save_freq="epoch",
                                                  double_checkpoint=True, delete_checkpoint=True),
                 EpochLog()]
    started = time.perf_counter()
    try:
        model.fit(x_train[order], y_train[order], epochs=epochs, batch_size=batch_size, shuffle=False,
                  validation_data=(x_test, y_test), callbacks=callbacks, verbose=0)
    except (ValueError, TypeError) as exc:
        raise TrialError(f"Keras fit failed: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}",
                         hint="check the model's input shape and loss against the data set") from exc
    train_seconds = time.perf_counter() - started
    started = time.perf_counter()
    results = model.evaluate(x_test, y_test, verbose=0, return_dict=True)
    eval_seconds = time.perf_counter() - started
    model.save(ctx.trial_dir / "model.keras")
    accuracy = float(results.get("accuracy", results.get("acc", results.get("compile_metrics", np.nan))))
    loss = float(results.get("loss", np.nan))
    history = _history_from(ctx)
    value = _metric_value(ctx.metric, accuracy, loss, model, x_test, data.y_test)
    return MetricsRecord(value=value, accuracy=accuracy, loss=loss, history=history,
                         epochs_done=len(history.get("loss", [])), resumed_from_epoch=resumed or None,
                         train_seconds=round(train_seconds, 3), eval_seconds=round(eval_seconds, 3),
                         n_train=len(x_train), n_test=len(x_test), framework="keras",
                         versions=package_versions(*VERSIONS))


WEIGHTS, METADATA = "latest.weights.h5", "training_metadata.json"


def usable_checkpoint(backup_dir, model: Any, steps_per_epoch: int, echo) -> int:
    """Make BackupAndRestore's checkpoint safe to load; the completed epochs it holds (0: a clean start).

    BackupAndRestore writes the weights in place, then the epoch in a second file, and on load catches
    only OSError: a kill mid-write would crash every restart. Here a torn or unreadable pair falls back
    to the previous one (the .bkp of double_checkpoint), then to a clean start, with a warning; and the
    epoch comes from the optimizer's step count, which is inside the weights file, when the two disagree.
    """
    import shutil

    latest, previous = (backup_dir / WEIGHTS, backup_dir / METADATA), \
        (backup_dir / f"{WEIGHTS}.bkp", backup_dir / f"{METADATA}.bkp")
    if not latest[0].exists() and not previous[0].exists():
        return 0
    if not getattr(model, "built", False) or getattr(model, "optimizer", None) is None:
        return _checkpoint_epoch(backup_dir)
    candidate = backup_dir / f"candidate.{WEIGHTS}"  # Keras loads only files named *.weights.h5
    for index, (weights, meta) in enumerate((latest, previous)):
        if not weights.exists():
            continue
        if index == 1:
            shutil.copyfile(weights, candidate)
        try:
            epoch = _epoch_of(model, candidate if index == 1 else weights, meta, steps_per_epoch, echo)
        except Exception as exc:  # h5py raises OSError, KeyError or ValueError on a torn file
            detail = " ".join(str(exc).split())[:160]
            following = "trying the previous one" if index == 0 else "no earlier checkpoint"
            echo(f"warning: checkpoint {weights.name} is unreadable ({type(exc).__name__}: {detail}); {following}")
            continue
        if index == 1:
            os.replace(candidate, latest[0])
        (backup_dir / f".{METADATA}.tmp").write_text(json.dumps({"epoch": epoch, "batch": 0}))
        os.replace(backup_dir / f".{METADATA}.tmp", latest[1])
        return epoch
    echo("warning: no readable checkpoint; training this trial again from the start")
    shutil.rmtree(backup_dir, ignore_errors=True)
    return 0


def _epoch_of(model: Any, weights, meta, steps_per_epoch: int, echo) -> int:
    """Load the weights (raises if torn) and say which epoch they end."""
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    model.load_weights(str(weights))
    recorded = None
    try:
        recorded = int(json.loads(meta.read_text())["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    steps = int(model.optimizer.iterations.numpy())
    if steps_per_epoch and steps % steps_per_epoch == 0:
        counted = steps // steps_per_epoch
        if recorded is not None and recorded != counted:
            echo(f"warning: checkpoint metadata says epoch {recorded} but {weights.name} holds epoch {counted} "
                 f"(killed between the two writes); resuming after epoch {counted}")
        return counted
    if recorded is None:
        raise ValueError(f"{meta.name} is unreadable and the step count ({steps}) is not a whole epoch")
    return recorded


def _checkpoint_epoch(backup_dir) -> int:
    import json

    meta = backup_dir / "training_metadata.json"
    try:
        return int(json.loads(meta.read_text())["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def _history_from(ctx: Any) -> dict[str, list[float]]:
    return epoch_history(ctx.logged_epochs())


def _metric_value(metric: str, accuracy: float, loss: float, model: Any, x_test: np.ndarray, y_true: np.ndarray) -> float:
    if metric in ("accuracy", "val_accuracy"):
        return accuracy
    if metric == "loss":
        return loss
    from sklearn.metrics import f1_score

    predicted = np.argmax(model.predict(x_test, verbose=0), axis=-1)
    return float(f1_score(y_true, predicted, average="macro"))
