"""Benchmark of tuning: compute until the threshold, and best metric within a budget, per strategy.

Methods: mlci's ladder, random search, mlci's default (Optuna TPE + pruning), KerasTuner Hyperband (Keras
tasks only; the PyTorch task has the mlci methods); one process per method, side by side. Prints a table, writes bench/results/tuning.json and .png.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
RESULTS = ROOT / "bench" / "results"

# Each search trains at most this many epochs (all its trials together; a trial starts only if its
# epochs fit in what is left), and at most MAX_TRIALS trials.
TASKS = {
    "cnn": {"model": ROOT / "models/mnist_cnn/mnist_cnn.py", "threshold": 0.97,
            "epoch_budget": int(os.environ.get("BENCH_CNN_EPOCHS", "20"))},
    "dense": {"model": ROOT / "models/mnist_ann/mnist_ann.py", "threshold": 0.93,
              "epoch_budget": int(os.environ.get("BENCH_DENSE_EPOCHS", "30"))},
    # the PyTorch example: mlci's methods only (KerasTuner's Hyperband tunes Keras models)
    "torch": {"model": ROOT / "models/mnist_torch/mnist_torch.py", "threshold": 0.97,
              "epoch_budget": int(os.environ.get("BENCH_TORCH_EPOCHS", "20"))},
}
ALL_TASKS = TASKS
# BENCH_TASKS picks and orders the tasks (e.g. "dense,cnn": the cheap one first).
TASKS = {name: ALL_TASKS[name] for name in os.environ.get("BENCH_TASKS", "cnn,dense,torch").split(",")}
METHODS = tuple(os.environ.get("BENCH_METHODS", "ladder,random,optuna,kerastuner-hyperband").split(","))
SEEDS = [int(s) for s in os.environ.get("BENCH_SEEDS", "0,1,2").split(",")]
MAX_TRIALS = 40


def _quiet_tf() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    os.environ["MLCI_TORCH_THREADS"] = "1"  # read by the PyTorch harness (mlci.harness.torch_fit.configure)
    import tensorflow as tf

    # One thread per method process: the methods run side by side and share the cores equally.
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)


def _progress(method: str, row: dict) -> None:
    print(f"{method}: {json.dumps(row)}", file=sys.stderr, flush=True)


def _summary(rows: list[dict], threshold: float) -> dict:
    """Trials, epochs and training seconds until the threshold was first met; best within the budget."""
    seconds = epochs = 0.0
    first = None
    for index, row in enumerate(rows):
        seconds += row["seconds"]
        epochs += row["epochs"]
        if first is None and row["value"] is not None and row["value"] >= threshold:
            first = {"trials": index + 1, "seconds": round(seconds, 2), "epochs": int(epochs)}
    best = max((r["value"] for r in rows if r["value"] is not None), default=None)
    return {"met": first is not None, "until_met": first, "best": best, "trials": len(rows),
            "seconds": round(seconds, 2), "epochs": int(epochs), "rows": rows}


# ----------------------------------------------------------------------------- mlci strategies


def run_mlci(strategy: str, task: dict, seed: int, home: Path) -> dict:
    """The mlci loop with the trials trained in this process (TensorFlow starts once, not per trial)."""
    from mlci.orchestration.oracle import RunOracle
    from mlci.orchestration.runs import prepare_run
    from mlci.core.store import RunStore
    from mlci.harness.train import train_trial
    from mlci.tuning.tweak import tweak

    import keras

    store = RunStore(home / f"{strategy}-{seed}")
    overrides = {"strategy": strategy, "threshold": task["threshold"], "max_trials": MAX_TRIALS, "seed": seed,
                 "dataset": "mnist-sample", "optimize": True}
    run, config = prepare_run(task["model"], store=store, overrides=overrides)
    rows, epochs = [], 0
    while epochs < task["epoch_budget"] and len(rows) < MAX_TRIALS:
        trial = RunOracle(run).ask().trial if not run.trials() else tweak(run, config)
        if trial is None or epochs + int(trial.hparams().hparams.get("epochs", 1)) > task["epoch_budget"]:
            break  # a trial starts only if its epochs fit in what is left of the budget
        keras.backend.clear_session()
        started = time.perf_counter()
        trial.write_hparams(trial.hparams().with_settings(config).model_copy(
            update={"dataset": "mnist-sample", "seed": seed}))
        metrics = train_trial(trial.dir, Path(run.record().model_file), echo=lambda _: None)
        seconds = time.perf_counter() - started
        if metrics is None:
            pruned = json.loads((trial.dir / "pruned.json").read_text())
            trial.update_state(status="pruned", reason=f"pruned at epoch {pruned['epoch']}")
            row = {"trial": trial.number, "value": None, "epochs": pruned["epoch"], "pruned": True}
        else:
            trial.update_state(status="succeeded")
            row = {"trial": trial.number, "value": metrics.value, "epochs": metrics.epochs_done, "pruned": False}
        RunOracle(run).tell(trial)
        row.update(seconds=round(seconds, 3), by=trial.hparams().proposed_by)
        rows.append(row)
        _progress(strategy, row)
        epochs += row["epochs"]
    return _summary(rows, task["threshold"])


# ----------------------------------------------------------------------------- KerasTuner reference


def run_hyperband(task: dict, seed: int, home: Path) -> dict:
    """KerasTuner's Hyperband on the same space (mlci's built-in one for the model), data and budget."""
    import keras
    import keras_tuner as kt

    from mlci.harness.data import load_dataset
    from mlci.tuning.spaces import space_for
    from mlci.harness.train import load_module
    from mlci.tuning.tweak import module_defaults

    module = load_module(task["model"])
    baseline = module_defaults(task["model"])
    architecture = "cnn" if "Conv" in task["model"].read_text() else "ann"
    space = space_for(baseline, framework="keras", architecture=architecture, model_file=task["model"])
    data = load_dataset("mnist-sample", seed)
    rows: list[dict] = []
    state = {"epochs": 0}

    def build(hp):
        values = dict(baseline)
        for name, p in space.items():
            if name == "epochs":
                continue  # Hyperband decides how long each model trains
            if p.type == "categorical":
                values[name] = hp.Choice(name, list(p.choices), default=baseline.get(name, p.choices[0]))
            elif p.type == "int":
                values[name] = hp.Int(name, int(p.low), int(p.high), sampling="log" if p.log else "linear",
                                      default=baseline.get(name))
            else:
                values[name] = hp.Float(name, float(p.low), float(p.high), sampling="log" if p.log else "linear",
                                        default=baseline.get(name))
        return module.build_model(values)

    class Budgeted(kt.Hyperband):
        def _configure_tensorboard_dir(self, callbacks, trial, execution=0):
            pass  # no TensorBoard callback here, and tensorboard is not installed

        def run_trial(self, trial, *args, **kwargs):
            values = trial.hyperparameters.values
            planned = int(values.get("tuner/epochs", 1)) - int(values.get("tuner/initial_epoch", 0))
            if state["epochs"] + planned > task["epoch_budget"] or len(rows) >= MAX_TRIALS:
                raise kt.errors.FatalError("budget spent")  # the same rule as for the mlci methods
            counted.update(epochs=0, last=None)
            kwargs["callbacks"] = [*kwargs.get("callbacks", []), EpochCount()]
            keras.backend.clear_session()
            started = time.perf_counter()
            result = super().run_trial(trial, *args, **kwargs)
            rows.append({"trial": len(rows), "value": counted["last"], "epochs": counted["epochs"], "pruned": False,
                         "seconds": round(time.perf_counter() - started, 3), "by": "hyperband"})
            state["epochs"] += counted["epochs"]
            _progress("hyperband", rows[-1])
            return result

    counted: dict = {}

    class EpochCount(keras.callbacks.Callback):
        # KerasTuner deep-copies callbacks: the counts live outside the instance
        def on_epoch_end(self, epoch, logs=None):
            counted["epochs"] += 1
            counted["last"] = float((logs or {}).get("val_accuracy", float("nan")))

    tuner = Budgeted(build, objective="val_accuracy", max_epochs=int(space["epochs"].high), factor=3, seed=seed,
                     directory=str(home / f"kt-{seed}"), project_name="bench", overwrite=True)
    try:
        tuner.search(data.x_train, data.y_train, validation_data=(data.x_test, data.y_test),
                     batch_size=int(baseline.get("batch_size", 32)), verbose=0)
    except kt.errors.FatalError:
        pass
    except RuntimeError as exc:  # KerasTuner wraps a FatalError raised in run_trial
        if "budget spent" not in str(exc):
            raise
    return _summary(rows, task["threshold"])


# ----------------------------------------------------------------------------- driver


def method_main(method: str, out: Path) -> None:
    _quiet_tf()
    results = {}
    with tempfile.TemporaryDirectory(prefix=f"bench-tuning-{method}-") as tmp:
        for task_name, task in TASKS.items():
            for seed in SEEDS:
                home = Path(tmp) / task_name
                if method == "kerastuner-hyperband" and task_name == "torch":
                    continue  # KerasTuner tunes Keras models only
                if method == "kerastuner-hyperband":
                    summary = run_hyperband(task, seed, home)
                else:
                    summary = run_mlci(method, task, seed, home)
                results[f"{task_name}/{seed}"] = summary
                out.write_text(json.dumps(results, indent=1))


def _median(values: list[float | None]) -> float | None:
    found = [v for v in values if v is not None]
    return statistics.median(found) if found else None


def main() -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    started = time.time()
    parts = {m: RESULTS / f".tuning-{m}.json" for m in METHODS}
    if os.environ.get("BENCH_REPORT_ONLY"):  # a run stopped early: report the seeds its methods finished
        report({m: json.loads(parts[m].read_text()) if parts[m].exists() else {} for m in METHODS}, started)
        return
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT / "src"),
           "MPLBACKEND": "Agg", "KERAS_HOME": str(ROOT / ".cache" / "keras")}
    processes = {m: subprocess.Popen([sys.executable, __file__, "--method", m, str(parts[m])], env=env,
                                     stdout=subprocess.DEVNULL, stderr=open(RESULTS / f".tuning-{m}.log", "w"))
                 for m in METHODS}
    for method, process in processes.items():
        if process.wait() != 0:
            raise SystemExit(f"{method} failed; see {RESULTS / f'.tuning-{method}.log'}")
    report({m: json.loads(parts[m].read_text()) for m in METHODS}, started)


def report(raw: dict[str, dict], started: float) -> None:
    from rich.console import Console
    from rich.table import Table

    summary = {}
    table = Table(title=f"Tuning to the threshold (median over seeds {SEEDS}, those finished; methods side by side, 1 thread each)")
    for column in ("task", "method", "met", "trials to met", "epochs to met", "train s to met",
                   "best in budget", "epochs in budget"):
        table.add_column(column, justify="left" if column in ("task", "method") else "right")
    for task_name, task in TASKS.items():
        for method in METHODS:
            runs = [raw[method][f"{task_name}/{s}"] for s in SEEDS if f"{task_name}/{s}" in raw[method]]
            if not runs:
                continue
            met = [r["until_met"] for r in runs if r["met"]]
            row = {"met": f"{len(met)}/{len(runs)}",
                   # a seed that never met counts as the whole budget (an optimistic floor for that method)
                   "trials_to_met": _median([(r["until_met"] or {"trials": r["trials"]})["trials"] for r in runs]),
                   "epochs_to_met": _median([(r["until_met"] or {"epochs": r["epochs"]})["epochs"] for r in runs]),
                   "seconds_to_met": _median([(r["until_met"] or {"seconds": r["seconds"]})["seconds"] for r in runs]),
                   "best_in_budget": _median([r["best"] for r in runs]),
                   "epochs_in_budget": _median([r["epochs"] for r in runs])}
            summary.setdefault(task_name, {})[method] = row
            table.add_row(f"{task_name} ≥ {task['threshold']}", method, row["met"], f"{row['trials_to_met']:g}",
                          f"{row['epochs_to_met']:g}", f"{row['seconds_to_met']:.1f}",
                          "—" if row["best_in_budget"] is None else f"{row['best_in_budget']:.4f}",
                          f"{row['epochs_in_budget']:g}")
    Console().print(table)
    payload = {"seeds": SEEDS, "tasks": {k: {"model": str(v["model"].relative_to(ROOT)), "threshold": v["threshold"],
                                             "epoch_budget": v["epoch_budget"]} for k, v in TASKS.items()},
               "max_trials": MAX_TRIALS, "wall_seconds": round(time.time() - started, 1), "cpus": os.cpu_count(),
               "summary": summary, "runs": raw}
    (RESULTS / "tuning.json").write_text(json.dumps(payload, indent=1))
    plot(summary)
    print(f"wrote {RESULTS / 'tuning.json'} and {RESULTS / 'tuning.png'} in {payload['wall_seconds']:.0f}s")


def plot(summary: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(summary), figsize=(5 * len(summary), 3.4), dpi=110,
                             squeeze=False)
    for ax, (task_name, rows) in zip(axes[0], summary.items()):
        names = list(rows)
        ax.bar(names, [rows[n]["seconds_to_met"] for n in names],
               color=["#90a4ae", "#b0bec5", "#1565c0", "#ef6c00"][: len(names)])
        for x, name in enumerate(names):
            ax.text(x, rows[name]["seconds_to_met"], rows[name]["met"], ha="center", va="bottom", fontsize=8)
        ax.set_title(f"{task_name}: training seconds until threshold (median)")
        ax.tick_params(axis="x", labelrotation=15, labelsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / "tuning.png")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--method":
        method_main(sys.argv[2], Path(sys.argv[3]))
    else:
        main()
