"""Module or script: detection, the rewriter, tweak's baseline and the harness give the same answer."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from mlci.source import rewrite
from mlci.source.detect import detect
from mlci.source.mode import is_script, model_mode
from mlci.tuning.tweak import module_defaults

IMPORTED = '''\
import keras
from impmodel import build_model

HPARAMS = {"units": 8, "epochs": 2}
'''

IMPMODEL = '''\
import keras


def build_model(hp):
    model = keras.Sequential([keras.layers.Dense(hp["units"], activation="relu"), keras.layers.Dense(10)])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
'''


def _write(folder: Path, name: str, source: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return path


def test_build_model_imported_from_another_file_is_a_module_everywhere(tmp_path):
    _write(tmp_path, "impmodel.py", IMPMODEL)
    model = _write(tmp_path, "train_me.py", IMPORTED)
    assert model_mode(IMPORTED) == "module" and not is_script(IMPORTED)
    assert rewrite.is_script is is_script  # the rewriter uses the same rule
    assert detect(model).mode == "module"
    assert module_defaults(model) == {"units": 8, "epochs": 2}  # HPARAMS, not knobs scanned from a script


@pytest.mark.parametrize("source, mode", [
    ("def build_model(hp):\n    pass\n", "module"),
    ("from models.cnn import build_model\n", "module"),
    ("import models.cnn as build_model\n", "module"),
    ("build_model = make_builder()\n", "module"),
    ("build_model: object = make_builder()\n", "module"),
    ("from sklearn.neighbors import KNeighborsClassifier\nclf = KNeighborsClassifier(3)\nclf.fit(x, y)\n", "script"),
    ("def main():\n    def build_model(hp):\n        pass\nKNeighborsClassifier(3).fit(x, y)\n", "script"),  # not at the top level
    ("KNeighborsClassifier(3).fit(x, y)\ndef build_model(hp:\n", "script"),  # cannot be parsed: run as a script, which reports the error
])
def test_detection_and_the_harness_rule_agree(tmp_path, source, mode):
    path = _write(tmp_path, "m.py", "from sklearn.neighbors import KNeighborsClassifier\n" + source)
    assert model_mode(path.read_text()) == mode
    assert detect(path).mode == mode
