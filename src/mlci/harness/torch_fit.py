"""PyTorch side of the harness: a standard classification loop (or the module's own), a checkpoint per epoch.

Resuming is exact: each epoch's checkpoint holds the model, the optimizer, the scheduler and every random
stream (torch, numpy, Python's random) as they stood at the end of that epoch, so a killed and resumed trial
ends with the same weights, history and accuracy as an uninterrupted one.
"""
from __future__ import annotations

import math
import os
import random
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from mlci.core.errors import TrialError
from mlci.core.knobs import default as knob_default
from mlci.core.store import MetricsRecord
from mlci.harness.common import history as epoch_history, versions as package_versions

CHECKPOINT = "epoch-{}.pt"
KEEP = 2  # the newest checkpoint may be torn by a kill mid-write: the one before it is the fallback
MOMENTUM = 0.9  # SGD without momentum barely moves in the few epochs a trial has

# hp["optimizer"] -> the torch.optim class (the Keras names the knob catalogue uses)
OPTIMIZERS = {"adam": "Adam", "adamw": "AdamW", "sgd": "SGD", "rmsprop": "RMSprop", "nadam": "NAdam",
              "adagrad": "Adagrad", "adadelta": "Adadelta", "adamax": "Adamax"}

VERSIONS = ("torch", "numpy")  # in metrics.json; a warm worker reads them before it forks


def cpu_threads() -> int:
    """The CPUs this process may use: its affinity, capped by a container's CPU quota (cgroup v2 cpu.max).

    torch counts the host's cores, so in a container limited to 2 CPUs it would start a thread per host core.
    """
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        count = os.cpu_count() or 1
    for quota_file, period_file in (("cpu.max", None), ("cpu/cpu.cfs_quota_us", "cpu/cpu.cfs_period_us")):
        try:  # cgroup v2 ("200000 100000" or "max 100000"), else v1 (-1: no quota)
            quota, *rest = Path("/sys/fs/cgroup", quota_file).read_text().split()
            period = rest[0] if period_file is None else Path("/sys/fs/cgroup", period_file).read_text().strip()
        except (OSError, IndexError):
            continue
        if quota not in ("max", "-1") and quota.lstrip("-").isdigit() and period.isdigit() and int(period) > 0:
            count = min(count, max(1, math.ceil(int(quota) / int(period))))
        break
    return max(1, count)


def configure(torch: Any) -> Any:
    """Threads and deterministic kernels, once per process; returns the device trials train on."""
    torch.set_num_threads(int(os.environ.get("MLCI_TORCH_THREADS") or cpu_threads()))
    # warn-only: an op without a deterministic kernel is named in the log, not an error
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    if torch.cuda.is_available():  # a team's CUDA image ([images] torch): cuBLAS needs this to be deterministic
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        return torch.device("cuda")
    return torch.device("cpu")


# ----------------------------------------------------------------------------- random streams


def rng_state(torch: Any) -> dict[str, Any]:
    """Every random stream a training step may draw from, as plain values (a checkpoint loads them safely)."""
    name, keys, position, has_gauss, cached = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "numpy": [name, keys.tolist(), position, has_gauss, cached],
             "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(torch: Any, state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ----------------------------------------------------------------------------- checkpoints


def _checkpoint_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    found = [p for p in folder.glob("epoch-*.pt") if p.stem.split("-")[-1].isdigit()]
    return sorted(found, key=lambda p: int(p.stem.split("-")[-1]))


def save_checkpoint(torch: Any, folder: Path, epoch: int, model: Any, optimizer: Any, scheduler: Any,
                    rows: list[dict[str, Any]]) -> None:
    """Epoch `epoch` done: write its checkpoint atomically (with the epoch log's rows so far), keep the one before."""
    folder.mkdir(parents=True, exist_ok=True)
    payload = {"epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
               "scheduler": scheduler.state_dict() if scheduler is not None else None, "rng": rng_state(torch),
               "rows": rows}
    tmp = folder / f".{CHECKPOINT.format(epoch)}.tmp"
    torch.save(payload, tmp)
    os.replace(tmp, folder / CHECKPOINT.format(epoch))
    for old in _checkpoint_files(folder)[:-KEEP]:
        old.unlink(missing_ok=True)


def resume(torch: Any, folder: Path, model: Any, optimizer: Any, scheduler: Any,
           echo: Callable[[str], None]) -> tuple[int, list[dict[str, Any]]]:
    """Load the newest readable checkpoint into model, optimizer, scheduler and the random streams.

    Returns its epoch and the epoch log's rows up to it (a kill between the checkpoint and the log's line
    loses no row). A torn or unreadable one is skipped with a warning (the previous one is used).
    """
    for path in reversed(_checkpoint_files(folder)):
        try:
            # weights_only=False: the file is the harness's own (the trial's folder), and a scheduler's
            # state may hold plain Python objects the safe loader refuses.
            payload = torch.load(path, map_location="cpu", weights_only=False)
            model.load_state_dict(payload["model"])
            optimizer.load_state_dict(payload["optimizer"])
            if scheduler is not None and payload.get("scheduler") is not None:
                scheduler.load_state_dict(payload["scheduler"])
            set_rng_state(torch, payload["rng"])
            return int(payload["epoch"]), list(payload["rows"])
        except Exception as exc:  # a torn zip, a missing key, a state of another model: try the one before
            detail = " ".join(str(exc).split())[:160]
            echo(f"warning: checkpoint {path.name} is unreadable ({type(exc).__name__}: {detail}); "
                 f"trying the previous one")
    return 0, []


# ----------------------------------------------------------------------------- the default loop


def build_optimizer(torch: Any, model: Any, hp: dict[str, Any], module: Any) -> tuple[Any, Any]:
    """The module's build_optimizer(model, hp) (an optimizer, or (optimizer, scheduler)), else hp's optimizer."""
    own = getattr(module, "build_optimizer", None)
    if callable(own):
        made = own(model, hp)
        return tuple(made) if isinstance(made, (tuple, list)) else (made, None)
    name = str(hp.get("optimizer", knob_default("optimizer"))).lower()
    if name not in OPTIMIZERS:
        raise TrialError(f"hparam 'optimizer' = {name!r} is unknown", hint=f"use one of {', '.join(OPTIMIZERS)}")
    rate = float(hp.get("learning_rate", knob_default("learning_rate")))
    options = {"momentum": MOMENTUM} if name == "sgd" else {}
    return getattr(torch.optim, OPTIMIZERS[name])(model.parameters(), lr=rate, **options), None


def loss_function(torch: Any, model: Any) -> Callable[[Any, Any], Any]:
    """Cross-entropy on the model's outputs; on log-probabilities when it ends with (Log)Softmax."""
    last = None
    for last in model.modules():
        pass
    nll = torch.nn.functional.nll_loss
    if isinstance(last, torch.nn.LogSoftmax):
        return nll
    if isinstance(last, torch.nn.Softmax):
        return lambda outputs, y: nll(torch.log(outputs.clamp_min(1e-12)), y)
    return torch.nn.functional.cross_entropy


def inputs_for(torch: Any, model: Any, x: np.ndarray) -> np.ndarray:
    """Images as PyTorch takes them, (n, channels, h, w); flat rows when the first layer is nn.Linear."""
    first = next((m for m in model.modules() if not list(m.children())), None)
    if isinstance(first, torch.nn.Linear) and x.ndim > 2:
        return x.reshape(len(x), -1)
    if x.ndim == 4:
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    return x


def default_train_epoch(torch: Any, loss_fn: Callable) -> Callable:
    def train_epoch(model, batches, optimizer, hp):
        model.train()
        total, correct, seen = 0.0, 0, 0
        for x, y in batches:
            optimizer.zero_grad(set_to_none=True)
            outputs = model(x)
            loss = loss_fn(outputs, y)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(y)
            correct += int((outputs.detach().argmax(dim=1) == y).sum())
            seen += len(y)
        return {"loss": total / max(seen, 1), "accuracy": correct / max(seen, 1)}

    return train_epoch


def default_evaluate(torch: Any, loss_fn: Callable, batch_size: int) -> Callable:
    def evaluate(model, x, y, hp):
        model.eval()
        total, correct = 0.0, 0
        with torch.no_grad():
            for start in range(0, len(y), max(batch_size, 256)):
                outputs = model(x[start:start + max(batch_size, 256)])
                part = y[start:start + max(batch_size, 256)]
                total += float(loss_fn(outputs, part)) * len(part)
                correct += int((outputs.argmax(dim=1) == part).sum())
        return {"loss": total / max(len(y), 1), "accuracy": correct / max(len(y), 1)}

    return evaluate


def _predictions(torch: Any, model: Any, x: Any) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return np.concatenate([model(x[i:i + 256]).argmax(dim=1).cpu().numpy() for i in range(0, len(x), 256)])


# ----------------------------------------------------------------------------- train


def train(model: Any, ctx: Any, torch: Any, module: Any = None, device: Any = None) -> MetricsRecord:
    hp, data = ctx.hp, ctx.data
    device = device or configure(torch)  # build_model imported PyTorch itself
    model.to(device)
    epochs = int(hp.get("epochs", knob_default("epochs")))
    batch_size = int(hp.get("batch_size", knob_default("batch_size")))
    x_train = torch.from_numpy(inputs_for(torch, model, data.x_train).astype("float32")).to(device)
    x_test = torch.from_numpy(inputs_for(torch, model, data.x_test).astype("float32")).to(device)
    y_train = torch.from_numpy(np.asarray(data.y_train, dtype="int64")).to(device)
    y_test = torch.from_numpy(np.asarray(data.y_test, dtype="int64")).to(device)
    optimizer, scheduler = build_optimizer(torch, model, hp, module)
    loss_fn = loss_function(torch, model)
    train_epoch = getattr(module, "train_epoch", None) or default_train_epoch(torch, loss_fn)
    evaluate = getattr(module, "evaluate", None) or default_evaluate(torch, loss_fn, batch_size)

    folder = ctx.checkpoints / "torch"
    resumed, rows = resume(torch, folder, model, optimizer, scheduler, ctx.echo)
    ctx.write_epoch_log(rows)
    if resumed:
        ctx.echo(f"resuming from the checkpoint after epoch {resumed}")
    started = time.perf_counter()
    try:
        for epoch in range(resumed, epochs):
            order = torch.randperm(len(y_train), device="cpu").to(device)  # the torch stream: checkpointed
            batches = ((x_train[index], y_train[index]) for index in order.split(batch_size))
            logs = dict(train_epoch(model, batches, optimizer, hp) or {})
            logs.update({f"val_{k}": v for k, v in (evaluate(model, x_test, y_test, hp) or {}).items()})
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                scheduler.step(logs.get("val_loss", logs.get("loss")))
            elif scheduler is not None:
                scheduler.step()
            rows.append({"epoch": epoch, **{k: float(v) for k, v in logs.items()}})
            save_checkpoint(torch, folder, epoch + 1, model, optimizer, scheduler, rows)
            ctx.log_epoch(epoch, logs)  # after the checkpoint, as Keras' BackupAndRestore: a logged epoch is kept
            if ctx.stop_requested:
                break
    except RuntimeError as exc:  # shape mismatches and dtype errors are RuntimeErrors in PyTorch
        raise TrialError(f"PyTorch training failed: {str(exc).splitlines()[0][:300]}",
                         hint="check the model's input shape and output classes against the data set "
                              "(images come as (n, 1, h, w) float32 in [0, 1])") from exc
    train_seconds = time.perf_counter() - started
    started = time.perf_counter()
    results = evaluate(model, x_test, y_test, hp) or {}
    eval_seconds = time.perf_counter() - started
    accuracy = float(results.get("accuracy", np.nan))
    loss = float(results.get("loss", np.nan))
    value = {"loss": loss}.get(ctx.metric, accuracy)
    if ctx.metric == "f1":
        from sklearn.metrics import f1_score

        value = float(f1_score(data.y_test, _predictions(torch, model, x_test), average="macro"))
    tmp = ctx.trial_dir / ".model.pt.tmp"
    torch.save(model.state_dict(), tmp)
    os.replace(tmp, ctx.trial_dir / "model.pt")
    history = epoch_history(ctx.logged_epochs())
    return MetricsRecord(value=value, accuracy=accuracy, loss=loss if math.isfinite(loss) else None,
                         history=history, epochs_done=len(ctx.logged_epochs()), resumed_from_epoch=resumed or None,
                         train_seconds=round(train_seconds, 3), eval_seconds=round(eval_seconds, 3),
                         n_train=len(data.x_train), n_test=len(data.x_test), framework="torch",
                         versions=package_versions(*VERSIONS))
