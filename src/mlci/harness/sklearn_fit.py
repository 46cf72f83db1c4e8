"""scikit-learn side of the harness: fit (or partial_fit per epoch with joblib checkpoints), evaluate, save.

Incremental estimators resume from the newest readable epoch checkpoint; a truncated one is
skipped with a warning, falling back to the one before it (or a clean start).
"""
from __future__ import annotations

import os
import time
from typing import Any

import joblib
import numpy as np

from mlci.core.errors import TrialError
from mlci.core.store import MetricsRecord
from mlci.harness.common import history as epoch_history, versions as package_versions

VERSIONS = ("scikit-learn", "numpy", "joblib")  # in metrics.json; a warm worker reads them before it forks


def _checkpoint_files(folder) -> list:
    if not folder.is_dir():
        return []
    found = [p for p in folder.glob("epoch-*.joblib") if p.stem.split("-")[-1].isdigit()]
    return sorted(found, key=lambda p: int(p.stem.split("-")[-1]))


def _resume(folder, echo) -> tuple[Any, int]:
    for path in reversed(_checkpoint_files(folder)):
        try:
            return joblib.load(path), int(path.stem.split("-")[-1])
        except Exception as exc:  # truncated or corrupt pickle: try the one before
            echo(f"warning: checkpoint {path.name} is unreadable ({type(exc).__name__}); trying the previous one")
    return None, 0


def _save_checkpoint(folder, estimator: Any, epoch: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".epoch-{epoch}.joblib.tmp"
    joblib.dump(estimator, tmp)
    os.replace(tmp, folder / f"epoch-{epoch}.joblib")
    for old in _checkpoint_files(folder)[:-2]:  # keep two: the newest may be torn by a kill mid-write
        old.unlink(missing_ok=True)


def train(estimator: Any, ctx: Any) -> MetricsRecord:
    data = ctx.data.flat()
    hp = ctx.hp
    classes = np.unique(np.concatenate([data.y_train, data.y_test]))
    incremental = hasattr(estimator, "partial_fit") and "epochs" in hp
    started = time.perf_counter()
    resumed = 0
    try:
        if incremental:
            folder = ctx.checkpoints / "sklearn"
            restored, resumed = _resume(folder, ctx.echo)
            if restored is not None:
                estimator = restored
                ctx.truncate_epoch_log(resumed)
                ctx.echo(f"resuming from the checkpoint after epoch {resumed}")
            else:
                ctx.truncate_epoch_log(0)
            for epoch in range(resumed, int(hp["epochs"])):
                order = np.random.RandomState(ctx.seed * 10_007 + epoch).permutation(len(data.x_train))
                estimator.partial_fit(data.x_train[order], data.y_train[order], classes=classes)
                _save_checkpoint(folder, estimator, epoch + 1)
                ctx.log_epoch(epoch, {"val_accuracy": float(estimator.score(data.x_test, data.y_test))})
                if ctx.stop_requested:
                    break
        else:
            estimator.fit(data.x_train, data.y_train)
    except (ValueError, TypeError) as exc:
        raise TrialError(f"scikit-learn fit failed: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}",
                         hint="check the estimator's parameters in build_model / hparams.json") from exc
    train_seconds = time.perf_counter() - started
    started = time.perf_counter()
    accuracy = float(estimator.score(data.x_test, data.y_test))
    loss = None
    if hasattr(estimator, "predict_proba"):
        from sklearn.metrics import log_loss

        try:
            loss = float(log_loss(data.y_test, estimator.predict_proba(data.x_test), labels=classes))
        except (ValueError, AttributeError):
            loss = None
    eval_seconds = time.perf_counter() - started
    value = accuracy
    if ctx.metric == "loss":
        value = loss if loss is not None else float("nan")
    elif ctx.metric == "f1":
        from sklearn.metrics import f1_score

        value = float(f1_score(data.y_test, estimator.predict(data.x_test), average="macro"))
    tmp = ctx.trial_dir / ".model.joblib.tmp"
    joblib.dump(estimator, tmp)
    os.replace(tmp, ctx.trial_dir / "model.joblib")
    history = epoch_history(ctx.logged_epochs())
    return MetricsRecord(value=value, accuracy=accuracy, loss=loss, history=history,
                         epochs_done=len(history.get("val_accuracy", [])) or 1, resumed_from_epoch=resumed or None,
                         train_seconds=round(train_seconds, 3), eval_seconds=round(eval_seconds, 3),
                         n_train=len(data.x_train), n_test=len(data.x_test), framework="sklearn",
                         versions=package_versions(*VERSIONS))
