"""Unmodified scripts (issue 9): knobs found with their lines, rewrites that keep the formatting,
metric capture from every source, end-to-end `mlci run` on the scripts in tests/harness/scripts/, and
kill-and-resume of a Keras script through the checkpoint mlci adds to its fit()."""
from __future__ import annotations

import ast
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import mlci, write_model
from mlci.core.errors import MetricsError, UsageError
from mlci.source.rewrite import rewrite, scan, scan_file
from mlci.harness.script import train_script
from mlci.harness.script_metric import _from_file, _from_stdout, capture_metric
from mlci.core.config import DataConfig
from mlci.core.store import HparamsRecord, MetricsRecord, RunStore, write_json
from mlci.tuning.tweak import module_defaults

SCRIPTS = Path(__file__).parent / "scripts"

# script -> (where its metric comes from, the knobs mlci finds in it)
EXPECTED = {
    "keras_seq_add.py": ("keras-evaluate", {"optimizer": "adam", "units": 16, "learning_rate": 0.001, "epochs": 1, "dense_layers": 1}),
    "keras_seq_list.py": ("file:accuracy.txt", {"optimizer": "adam", "units": 32, "dropout": 0.5, "learning_rate": 0.0005, "epochs": 2,
                                                "dense_layers": 1}),
    "keras_functional.py": ("stdout", {"optimizer": "rmsprop", "units": 24, "learning_rate": 0.001, "epochs": 1, "dense_layers": 1}),
    "keras_star_cnn.py": ("file:result.txt", {"optimizer": "adam", "filters": 4, "kernel_size": 3, "learning_rate": 0.001, "epochs": 1,
                                              "dense_layers": 0, "conv_blocks": 1}),
    "keras_cnn_validation.py": ("keras-fit (validation)", {"optimizer": "sgd", "filters": 4, "kernel_size": 3, "learning_rate": 0.01,
                                                           "epochs": 1, "dense_layers": 0, "conv_blocks": 1}),
    "keras_hparams_file.py": ("metrics.json", {"optimizer": "adam", "units": 8, "learning_rate": 0.001, "dense_layers": 1}),
    "keras_digits_default_epochs.py": ("keras-evaluate", {"optimizer": "sgd", "units": 16, "learning_rate": 0.05, "epochs": 1,
                                                          "dense_layers": 1}),
    "keras_main_argparse.py": ("keras-evaluate", {"optimizer": "adam", "units": 12, "learning_rate": 0.001, "dense_layers": 1}),
    "keras_assignment_style.py": ("file:accuracy.txt", {"optimizer": "rmsprop", "units": 16, "learning_rate": 0.001, "epochs": 1,
                                                        "dense_layers": 1}),
    "keras_loop_built.py": ("keras-evaluate", {"optimizer": "adam", "learning_rate": 0.001, "epochs": 1, "dense_layers": 0}),
    "sklearn_knn.py": ("stdout", {"n_neighbors": 150}),
    "sklearn_svc_result.py": ("file:result.txt", {"C": 0.001}),
    "sklearn_forest_metrics.py": ("metrics.json", {"n_estimators": 3, "max_depth": 4}),
    "sklearn_logreg_custom_file.py": ("file:score.out", {"C": 0.0005}),
    "torch_digits_mlp.py": ("stdout", {"epochs": 1, "batch_size": 64, "units": 4, "learning_rate": 0.01}),
    "torch_digits_cnn.py": ("file:accuracy.txt", {"batch_size": 32, "filters": 4, "learning_rate": 0.001, "epochs": 2}),
}
ARTIFACT = {"keras": "model.keras", "sklearn": "model.joblib", "torch": "model.pt"}
KERAS_SCRIPTS = sorted(name for name in EXPECTED if name.startswith("keras"))


def folder_digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def trial_dir(tmp_path: Path, hparams: dict, name: str = "t") -> Path:
    folder = tmp_path / name
    # the test scripts' mlci.toml [data], as the launch writes it into the spec
    write_json(folder / "hparams.json", HparamsRecord(trial=0, hparams=hparams, data=DataConfig(
        serve_keras_mnist="mnist-sample", accuracy_files=["score.out"])))
    return folder


# ----------------------------------------------------------------------------- finding knobs


def test_every_test_script_has_a_known_set_of_knobs():
    assert len(EXPECTED) >= 12 and set(EXPECTED) == {p.name for p in SCRIPTS.glob("*.py")}
    for name, (_, knobs) in EXPECTED.items():
        assert scan_file(SCRIPTS / name).hparams() == knobs, name
        assert module_defaults(SCRIPTS / name) == knobs, name  # the pipeline's baseline trial


def test_explain_lists_knobs_with_file_and_line_and_what_it_cannot_use():
    done = mlci("tweak", "--explain", str(SCRIPTS / "keras_star_cnn.py"), check=True)
    assert "script mode; 7 knob(s)" in done.stdout
    assert "keras_star_cnn.py:17: filters = 4  in Conv2D(4, (3, 3)" in done.stdout
    assert "keras_star_cnn.py:22: epochs = 1  in model.fit(" in done.stdout and "via EPOCHS = 1 (line 7)" in done.stdout
    loop = mlci("tweak", "--explain", str(SCRIPTS / "keras_loop_built.py"), check=True)
    assert "keras_loop_built.py:9: units not tunable: units=units: its value is computed at run time" in loop.stdout
    hp_file = mlci("tweak", "--explain", str(SCRIPTS / "keras_hparams_file.py"), check=True)
    assert 'epochs not tunable: settings["epochs"] is not a literal number' in hp_file.stdout


def test_explain_on_a_file_libcst_cannot_parse_says_so_and_exits_0(tmp_path):
    bad = write_model(tmp_path, "import keras\nmodel.fit(x, epochs=\n", "broken.py")
    done = mlci("tweak", "--explain", str(bad))
    assert done.returncode == 0
    assert f"{bad}:" in done.stdout and "cannot be parsed" in done.stdout
    assert "mlci trains it unchanged and cannot tweak it" in done.stdout


def test_tweak_without_run_or_explain_is_a_usage_error():
    done = mlci("tweak")
    assert done.returncode == 2 and "Missing option '--run'" in done.stderr


def test_sklearn_knobs_positional_and_omitted_defaults():
    found = scan("from sklearn.neighbors import KNeighborsClassifier\nfrom sklearn.svm import SVC\n"
                 "a = KNeighborsClassifier(3)\nb = SVC()\n")
    assert found.hparams() == {"n_neighbors": 3, "C": 1.0}
    result = rewrite(found_source := "from sklearn.svm import SVC\nclf = SVC(kernel='rbf')\n", {"C": 10.0})
    assert result.source == "from sklearn.svm import SVC\nclf = SVC(kernel='rbf', C=10.0)\n", found_source


# ----------------------------------------------------------------------------- rewriting


LIST_SCRIPT = '''\
import tensorflow as tf
from tensorflow.keras.layers import Conv2D, Dense, Dropout, Flatten, MaxPooling2D

EPOCHS = 3  # the users' own comment stays
model = tf.keras.Sequential([
    Conv2D(32, (3, 3), activation='relu', input_shape=(28, 28, 1)),
    MaxPooling2D((2, 2)),
    Flatten(),
    Dense(128, activation='relu'),   # hidden
    Dropout(0.2),
    Dense(10, activation='softmax'),
])
model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate=0.001), loss='sparse_categorical_crossentropy')
model.fit(x, y, epochs=EPOCHS, batch_size=64)
'''


def test_rewrite_list_style_changes_only_the_knobs_and_keeps_comments():
    found = scan(LIST_SCRIPT, "cnn.py")
    assert found.hparams() == {"filters": 32, "kernel_size": 3, "units": 128, "dropout": 0.2, "learning_rate": 0.001,
                               "optimizer": "adam", "epochs": 3, "dense_layers": 1, "conv_blocks": 1}
    wanted = {**found.hparams(), "epochs": 6, "units": 256, "kernel_size": 5, "learning_rate": 0.0005,
              "dropout": 0.3, "dense_layers": 2, "conv_blocks": 2, "filters": 64}
    result = rewrite(LIST_SCRIPT, wanted, "cnn.py", "trials/1/model.py")
    assert result.source.splitlines() == [
        "import tensorflow as tf",
        "from tensorflow.keras.layers import Conv2D, Dense, Dropout, Flatten, MaxPooling2D",
        "",
        "EPOCHS = 6  # the users' own comment stays",
        "model = tf.keras.Sequential([",
        "    Conv2D(64, (5, 5), activation='relu', input_shape=(28, 28, 1)),",
        "    MaxPooling2D((2, 2)),",
        "    Conv2D(64, (3, 3), padding='same', activation='relu'),",
        "    MaxPooling2D((2, 2)),",
        "    Flatten(),",
        "    Dense(256, activation='relu'),   # hidden",
        "    Dropout(0.3),",
        "    Dense(256, activation='relu'),",
        "    Dense(10, activation='softmax'),",
        "])",
        "model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate=0.0005), loss='sparse_categorical_crossentropy')",
        "model.fit(x, y, epochs=EPOCHS, batch_size=64)",
    ]
    assert result.diff.startswith("--- cnn.py\n+++ trials/1/model.py\n")
    assert scan(result.source).hparams() == {**wanted, "units": 256}


def test_rewrite_add_style_inside_a_function_and_adds_a_missing_epochs_keyword():
    source = textwrap.dedent('''\
        from keras.models import Sequential
        from keras.layers import *

        def make():
            model = Sequential()
            model.add(Flatten(input_shape=(28, 28)))
            model.add(Dense(64, activation="relu"))
            model.add(Dense(10, activation="softmax"))
            return model

        model = make()
        model.fit(x, y)
    ''')
    assert scan(source).hparams() == {"units": 64, "epochs": 1, "dense_layers": 1}
    result = rewrite(source, {"units": 64, "epochs": 2, "dense_layers": 2})
    assert '    model.add(Dense(64, activation="relu"))\n    model.add(Dense(64, activation="relu"))\n' \
           '    model.add(Dense(10, activation="softmax"))' in result.source
    assert "model.fit(x, y, epochs=2)" in result.source
    ast.parse(result.source)


def test_rewrite_functional_chain_inserts_a_step_reading_the_output_layers_input():
    source = (SCRIPTS / "keras_functional.py").read_text()
    result = rewrite(source, {"units": 24, "learning_rate": 0.001, "epochs": 1, "dense_layers": 2})
    assert ('x = layers.Dense(24, activation="relu")(inputs)\nx = layers.Dense(24, activation="relu")(x)\n'
            'outputs = layers.Dense(10, activation="softmax")(x)') in result.source
    assert result.changes == ["line 12: 1 Dense(24) layer(s) inserted before the output layer"]


def test_rewrite_refuses_unknown_knobs_and_removing_layers_with_clear_messages():
    source = (SCRIPTS / "keras_seq_add.py").read_text()
    with pytest.raises(UsageError) as info:
        rewrite(source, {"filters": 64}, "keras_seq_add.py")
    assert info.value.one_line() == ("keras_seq_add.py: no place in the source for hparam(s) filters; tunable here: "
                                     "dense_layers, epochs, learning_rate, optimizer, units (`mlci tweak --explain keras_seq_add.py`)")
    with pytest.raises(UsageError, match=r"hparam 'dense_layers' = 0: mlci can add layers, not remove them"):
        rewrite(source, {"dense_layers": 0}, "keras_seq_add.py")


def test_a_model_built_in_a_loop_keeps_its_loop_and_gets_a_layer_before_the_output():
    source = (SCRIPTS / "keras_loop_built.py").read_text()
    result = rewrite(source, {"learning_rate": 0.001, "epochs": 1, "dense_layers": 1})
    assert ("for units in [8, 8]:\n    model.add(tf.keras.layers.Dense(units, activation=\"relu\"))\n"
            "model.add(tf.keras.layers.Dense(128, activation=\"relu\"))\n") in result.source


# ----------------------------------------------------------------------------- metric capture


@pytest.mark.parametrize("text,value", [("0.9731", 0.9731), ("97.31", 0.9731), ("Accuracy: 96.5%\n", 0.965),
                                        ("acc=0.5", 0.5), ("1", 1.0), ("250", None), ("none", None)])
def test_accuracy_files_understand_fractions_and_percentages(tmp_path, text, value):
    path = tmp_path / "accuracy.txt"
    path.write_text(text)
    assert _from_file(path) == (pytest.approx(value) if value is not None else None)


def test_stdout_takes_the_last_accuracy_line_and_percentages():
    lines = ["Epoch 1/2", "accuracy: 0.71 - loss: 0.9 - val_accuracy: 0.74", "Train accuracy: 99.1%, test accuracy: 97.3%",
             "done"]
    assert _from_stdout(lines) == pytest.approx(0.973)
    assert _from_stdout(["Test acc = 0.88"]) == pytest.approx(0.88)
    assert _from_stdout(["loss 0.3"]) is None


def test_metrics_json_wins_over_an_accuracy_file_and_stale_files_are_ignored(tmp_path):
    (tmp_path / "accuracy.txt").write_text("0.5")
    started = time.time()
    os.utime(tmp_path / "accuracy.txt", (started - 3600, started - 3600))  # left over from an earlier run
    found = capture_metric(tmp_path, started, "accuracy", None, ["accuracy: 0.7"], [])
    assert (found.source, found.value) == ("stdout", 0.7)  # accuracy.txt predates the run
    (tmp_path / "accuracy.txt").write_text("61%")
    assert capture_metric(tmp_path, started, "accuracy", None, [], []).source == "file:accuracy.txt"
    (tmp_path / "metrics.json").write_text(json.dumps({"accuracy": 93.0}))
    found = capture_metric(tmp_path, started, "accuracy", None, [], [])
    assert (found.source, found.value) == ("metrics.json", 0.93)


def test_no_metric_anywhere_is_an_error_showing_the_three_ways(tmp_path):
    script = write_model(tmp_path / "s", '''
        from sklearn.datasets import load_digits
        from sklearn.neighbors import KNeighborsClassifier
        X, y = load_digits(return_X_y=True)
        KNeighborsClassifier(n_neighbors=3).fit(X, y)
        print("done")
    ''', "silent.py")
    folder = trial_dir(tmp_path, {"n_neighbors": 3})
    with pytest.raises(MetricsError) as info:
        train_script(folder, script, echo=lambda _: None)
    message = info.value.one_line()
    assert message.startswith("the script ran to the end but reported no accuracy that mlci can read; "
                              "report it one of three ways: (1) write metrics.json in the script's folder, "
                              'e.g. {"accuracy": 0.97}; (2) print a line such as \'accuracy: 0.97\'')
    assert "(3) write the number to one of accuracy.txt, result.txt, new_accuracy.txt" in message
    done = mlci("train", "--trial-dir", str(folder), "--model", str(script))
    assert done.returncode == 6 and "reported no accuracy" in (folder / "error.txt").read_text()


def test_a_script_that_raises_names_its_line_and_fails_the_trial(tmp_path):
    script = write_model(tmp_path / "s", "import sklearn\nx = 1\nraise RuntimeError('out of data')\n", "boom.py")
    done = mlci("train", "--trial-dir", str(trial_dir(tmp_path, {})), "--model", str(script))
    assert done.returncode == 5
    assert "mlci: error: boom.py:3: the script raised RuntimeError: out of data" in done.stderr


def test_script_runs_as_main_in_a_mirror_of_its_folder_with_its_own_argv(tmp_path):
    script = write_model(tmp_path / "s", '''
        import os, sys
        from sklearn.neighbors import KNeighborsClassifier
        assert __name__ == "__main__"
        data = open("data/values.txt").read().split()
        with open("result.txt", "w") as out:
            out.write(f"{len(data) * 10}%")
        print("argv", sys.argv, "cwd", os.getcwd())
    ''', "uses_files.py")
    (tmp_path / "s" / "data").mkdir()
    (tmp_path / "s" / "data" / "values.txt").write_text("1 2 3 4 5 6 7 8")
    (tmp_path / "s" / "result.txt").write_text("stale: 1%")
    before = folder_digest(tmp_path / "s")
    folder = trial_dir(tmp_path, {})
    lines = []
    metrics = train_script(folder, script, echo=lines.append)
    assert (metrics.value, metrics.source) == (pytest.approx(0.8), "file:result.txt")
    assert folder_digest(tmp_path / "s") == before  # the user's folder is never written
    assert (folder / "work" / "result.txt").read_text() == "80%"
    log = (folder / "metrics.json").read_text()
    assert '"source": "file:result.txt"' in log


# ----------------------------------------------------------------------------- end to end


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_mlci_run_captures_the_metric_then_retrains_a_rewritten_copy(tmp_path, name):
    source, knobs = EXPECTED[name]
    before = folder_digest(SCRIPTS)
    done = mlci("run", str(SCRIPTS / name), "--home", str(tmp_path / "store"), "--threshold", "0.999",
                "--max-trials", "2", "--no-notify", "-q", timeout=300)
    assert done.returncode == 3, done.stdout + done.stderr  # budget spent below a threshold no script reaches
    assert "mlci: script mode: knobs tweak can rewrite: " in done.stderr
    run = RunStore(tmp_path / "store").runs()[0]
    assert run.record().kind.mode == "script"
    baseline, tweaked = run.trial(0), run.trial(1)
    first = baseline.metrics()
    assert first.source == source and 0.05 < first.value <= 1
    assert baseline.hparams().hparams == knobs and not (baseline.dir / "model.py").exists()
    record = tweaked.hparams()
    diff = (tweaked.dir / "model.diff").read_text()
    assert diff.startswith(f"--- {name}\n+++ trials/1/model.py\n") and record.change
    assert (tweaked.dir / "model.py").exists() and tweaked.metrics().source == source
    assert "runs a rewritten copy" in tweaked.log_path.read_text()
    assert "Source changes" in (run.dir / "report.html").read_text()
    assert (baseline.dir / ARTIFACT[name.split("_")[0]]).exists()
    assert folder_digest(SCRIPTS) == before


def _fit_rows(folder: Path) -> int:
    try:
        return len((folder / "checkpoints" / "keras-fit-1.jsonl").read_text().splitlines())
    except OSError:
        return 0


@pytest.mark.slow
@pytest.mark.parametrize("name", ["keras_seq_add.py", "keras_star_cnn.py", "keras_functional.py",
                                  "keras_assignment_style.py"])
def test_sigkill_mid_fit_resumes_a_keras_script_from_the_checkpoint_mlci_added(tmp_path, name):
    knobs = dict(EXPECTED[name][1], epochs=6)
    folder = trial_dir(tmp_path, knobs)
    args = [sys.executable, "-m", "mlci", "train", "--trial-dir", str(folder), "--model", str(SCRIPTS / name)]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 180
    while _fit_rows(folder) < 2 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL and not (folder / "metrics.json").exists()
    assert (folder / "checkpoints" / "keras-fit-1").is_dir()
    done = mlci("train", "--trial-dir", str(folder), "--model", str(SCRIPTS / name), timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    metrics = MetricsRecord.model_validate_json((folder / "metrics.json").read_text())
    assert metrics.resumed_from_epoch is not None and metrics.resumed_from_epoch >= 2
    assert "fit #1 resumes from its checkpoint after epoch" in done.stdout
    assert metrics.epochs_done == 6 and len(metrics.history["loss"]) == 6
    assert not (folder / "checkpoints" / "keras-fit-1").exists()  # a finished trial keeps no resume point


@pytest.mark.slow
def test_pipeline_restarts_a_killed_script_trial_and_it_resumes(tmp_path):
    """The monitor's path: the runner sees the trial die, relaunches it, the hooked fit resumes."""
    from mlci.orchestration.pipeline import run_pipeline

    model_dir = tmp_path / "m"
    shutil.copytree(SCRIPTS, model_dir)
    script = model_dir / "keras_seq_add.py"
    script.write_text(script.read_text().replace("epochs=1", "epochs=6"))
    store = RunStore(tmp_path / "store")

    import threading

    def killer():
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            for trial_folder in (store.runs_dir).glob("*/trials/0"):
                state = trial_folder / "trial.json"
                if _fit_rows(trial_folder) >= 2 and state.exists():
                    pid = json.loads(state.read_text()).get("pid")
                    if pid:
                        os.killpg(pid, signal.SIGKILL)
                        return
            time.sleep(0.02)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    result = run_pipeline(script, store=store, overrides={"threshold": 0.5, "max_trials": 1}, notify_outcome=False)
    thread.join(timeout=5)
    trial = result.run.trial(0)
    assert len(trial.state().restarts) == 1
    metrics = trial.metrics()
    assert metrics.resumed_from_epoch >= 2 and metrics.epochs_done == 6 and metrics.source == "keras-evaluate"


def test_an_optimizer_named_by_a_string_is_written_out_with_the_new_learning_rate():
    source = "import tensorflow as tf\nm = tf.keras.Sequential()\nm.compile(optimizer='adam', loss='mse')\n"
    assert scan(source).hparams() == {"learning_rate": 0.001, "optimizer": "adam"}  # Keras' default for Adam
    result = rewrite(source, {"learning_rate": 0.0005})
    assert "m.compile(optimizer=tf.keras.optimizers.Adam(learning_rate=0.0005), loss='mse')" in result.source
    plain = "from keras.models import Sequential\nm = Sequential()\nm.compile('sgd', 'mse')\n"
    assert "m.compile(__import__(\"keras\").optimizers.SGD(learning_rate=0.005), 'mse')" in rewrite(
        plain, {"learning_rate": 0.005}).source


def test_the_optimizer_a_script_builds_is_a_knob_and_changing_it_keeps_how_the_script_names_keras():
    source = ("import tensorflow as tf\nfrom tensorflow.keras.optimizers import SGD\nm = tf.keras.Sequential()\n"
              "m.compile(optimizer=SGD(lr=0.001, momentum=0.9), loss='mse')\n")
    assert scan(source).hparams() == {"learning_rate": 0.001, "optimizer": "sgd"}
    result = rewrite(source, {"optimizer": "adam", "learning_rate": 0.002})
    # SGD's momentum belongs to SGD: the new class gets the trial's learning rate only
    assert "m.compile(optimizer=tf.keras.optimizers.Adam(learning_rate=0.002), loss='mse')" in result.source
    assert result.changes == ["line 4: optimizer sgd -> Adam(learning_rate=0.002)"]
    same_class = rewrite(source, {"learning_rate": 0.05}).source
    assert "SGD(lr=0.05, momentum=0.9)" in same_class
    named = "import keras\nm = keras.Sequential()\nm.compile(keras.optimizers.RMSprop(0.01), 'mse')\n"
    assert "m.compile(keras.optimizers.SGD(learning_rate=0.1), 'mse')" in rewrite(
        named, {"optimizer": "sgd", "learning_rate": 0.1}).source


def test_epochs_given_by_position_is_rewritten_in_place():
    source = "import keras\nmodel = keras.Sequential()\nmodel.fit(x, y, 128, 5)\n"
    assert rewrite(source, {"epochs": 10}).source.endswith("model.fit(x, y, 128, 10)\n")


def test_epochs_is_added_only_to_a_keras_models_fit_never_to_a_scalers():
    source = ("import keras\nfrom sklearn.preprocessing import StandardScaler\nscaler = StandardScaler()\n"
              "scaler.fit(X)\nnet = keras.Sequential([keras.layers.Dense(10)])\nnet.fit(X, y)\n")
    result = rewrite(source, {"epochs": 3, "dense_layers": 0})
    assert "scaler.fit(X)\n" in result.source and "net.fit(X, y, epochs=3)\n" in result.source


def test_build_model_defined_imported_or_assigned_means_module_mode():
    from mlci.source.rewrite import is_script

    assert not is_script("def build_model(hp):\n    pass\n")
    assert not is_script("from models.cnn import build_model\n")
    assert not is_script("build_model = make_builder()\n")
    assert is_script("import keras\nmodel = keras.Sequential()\n")


def test_serve_keras_mnist_from_an_npz_and_a_clear_error_for_a_bad_one(tmp_path):
    import numpy as np

    from mlci.harness.script_hooks import mnist_arrays

    arrays = {"x_train": np.zeros((6, 28, 28), "uint8"), "y_train": np.arange(6, dtype="uint8"),
              "x_test": np.ones((2, 28, 28), "uint8"), "y_test": np.arange(2, dtype="uint8")}
    np.savez(tmp_path / "mnist.npz", **arrays)
    (x_train, y_train), (x_test, y_test) = mnist_arrays("mnist.npz", tmp_path)
    assert x_train.shape == (6, 28, 28) and list(y_test) == [0, 1]
    (x_train, y_train), (x_test, y_test) = mnist_arrays("mnist-sample", tmp_path)
    assert (x_train.shape, x_test.shape, x_train.dtype.name) == ((4000, 28, 28), (1000, 28, 28), "uint8")
    with pytest.raises(UsageError) as info:
        mnist_arrays("missing.npz", tmp_path)
    assert info.value.one_line().startswith(f"[data] serve_keras_mnist = 'missing.npz': {tmp_path / 'missing.npz'} "
                                            "is not a readable MNIST .npz (FileNotFoundError")
    assert info.value.one_line().endswith('give "mnist-sample", "digits" or an .npz with x_train, y_train, x_test, y_test')


@pytest.mark.slow
def test_keras_datasets_mnist_load_data_returns_the_local_copy_while_served(tmp_path):
    import keras
    import tensorflow as tf

    from mlci.harness.script_hooks import serve_keras_mnist

    original = keras.datasets.mnist.load_data
    remove = serve_keras_mnist("mnist-sample", tmp_path, 0)
    try:
        for load in (keras.datasets.mnist.load_data, tf.keras.datasets.mnist.load_data):
            (x_train, _), (x_test, _) = load()
            assert x_train.shape == (4000, 28, 28) and x_test.shape == (1000, 28, 28)
    finally:
        remove()
    assert keras.datasets.mnist.load_data is original


def test_jenkins_steps_on_a_script_tweak_prints_the_rewrite_and_launch_trains_it(tmp_path):
    """fetch → launch → tweak → launch, each its own process as the Jenkins jobs run them."""
    home = str(tmp_path / "store")
    created = mlci("fetch", str(SCRIPTS), "--model", "sklearn_knn.py", "--threshold", "0.99", "--home", home,
                   check=True)  # below the threshold, so job 4 proposes
    env = {"RUN_ID": dict(line.split("=", 1) for line in created.stdout.split())["RUN_ID"]}
    mlci("launch", "--wait", "--home", home, env=env, check=True)
    tweaked = mlci("tweak", "--home", home, env=env, check=True)
    assert "trial 1: ladder:n_neighbors (n_neighbors 150 -> 75)" in tweaked.stdout
    assert "-knn = KNeighborsClassifier(n_neighbors=150)\n+knn = KNeighborsClassifier(n_neighbors=75)" in tweaked.stdout
    mlci("launch", "--wait", "--home", home, env=env, check=True)
    run = RunStore(tmp_path / "store").runs()[0]
    assert run.trial(1).metrics().value > run.trial(0).metrics().value
    assert "runs a rewritten copy" in run.trial(1).log_path.read_text()
