"""KerasTuner's way, for bench/overhead.py: trials trained one after another inside one search process.

`python bench/_kerastuner_trials.py MODEL_FILE COUNT` trains the model's baseline COUNT times as KerasTuner
trials (a RandomSearch whose run_trial builds, fits and evaluates, as KerasTuner's own does, clearing the
Keras session between trials) and prints `KT-ROWS [...]`: per trial its wall (from the previous trial's end;
the first from this process's start, imports included) and its fit + evaluate seconds.
"""
from __future__ import annotations

import time

STARTED = time.perf_counter()

import importlib.util  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import keras_tuner  # noqa: E402

from mlci.harness.data import load_dataset  # noqa: E402


def main() -> None:
    model_file, count = Path(sys.argv[1]), int(sys.argv[2])
    spec = importlib.util.spec_from_file_location("kt_model", model_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    hp_values = dict(module.HPARAMS)
    data_started = time.perf_counter()
    data = load_dataset("mnist-sample", 0)
    data_seconds = time.perf_counter() - data_started
    rows: list[dict] = []
    last_end = [STARTED]

    class InProcess(keras_tuner.RandomSearch):
        def run_trial(self, trial, *args, **kwargs):
            trial.hyperparameters.Int("repeat", 0, 10**6)  # a space with room for COUNT trials
            is_keras = "keras" in sys.modules and "keras" in model_file.read_text()
            if is_keras:
                import keras

                keras.backend.clear_session()
                keras.utils.set_random_seed(0)
            model = module.build_model(hp_values)
            started = time.perf_counter()
            if is_keras:
                model.fit(data.x_train, data.y_train, epochs=hp_values.get("epochs", 1),
                          batch_size=hp_values.get("batch_size", 32), verbose=0)
                accuracy = float(model.evaluate(data.x_test, data.y_test, verbose=0)[1])
            else:
                flat = data.flat()
                model.fit(flat.x_train, flat.y_train)
                accuracy = float(model.score(flat.x_test, flat.y_test))
            rows.append({"fit_eval": time.perf_counter() - started, "value": accuracy})
            return {"accuracy": accuracy}

        def on_trial_end(self, trial):
            super().on_trial_end(trial)
            now = time.perf_counter()
            rows[-1]["wall"] = now - last_end[0]
            rows[-1]["overhead"] = rows[-1]["wall"] - rows[-1]["fit_eval"]
            rows[-1]["data"] = data_seconds if len(rows) == 1 else 0.0
            last_end[0] = now

    with tempfile.TemporaryDirectory() as folder:
        hps = keras_tuner.HyperParameters()
        hps.Int("repeat", 0, 10**6)
        tuner = InProcess(hypermodel=None, objective=keras_tuner.Objective("accuracy", "max"), max_trials=count,
                          hyperparameters=hps, directory=folder, project_name="bench", seed=0)
        tuner.search()
    print("KT-ROWS " + json.dumps(rows))


if __name__ == "__main__":
    main()
