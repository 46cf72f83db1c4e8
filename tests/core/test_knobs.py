"""The knob catalogue is the one vocabulary: spaces, ladder steps, the rewriter and the harness read it."""
from __future__ import annotations

from mlci.core.knobs import KNOBS, REWRITABLE, default
from mlci.source import rewrite
from mlci.tuning import spaces
from mlci.tuning.strategies.ladder import KERAS_STEPS, SKLEARN_STEPS


def test_every_knob_name_used_anywhere_is_in_the_catalogue():
    tables = [spaces.KERAS, spaces.CNN, spaces.ANN, spaces.TORCH_CNN, spaces.TORCH_MLP, *spaces.SKLEARN.values()]
    used = {name for table in tables for name in table} | {step[0] for step in KERAS_STEPS + SKLEARN_STEPS}
    assert used - set(KNOBS) == set()
    assert rewrite.SCALAR_KNOBS == REWRITABLE and set(rewrite.INT_KNOBS) <= set(REWRITABLE)
    for knob in KNOBS.values():
        assert knob.kind in ("int", "float", "choice") and knob.means and knob.frameworks


def test_spaces_take_their_ranges_from_the_catalogue():
    assert spaces.KERAS["learning_rate"] == KNOBS["learning_rate"].ranges["keras"]
    assert spaces.CNN["dense_layers"] == KNOBS["dense_layers"].ranges["cnn"]
    assert spaces.ANN["units"] == {"type": "int", "low": 16, "high": 512, "log": True}
    assert spaces.SKLEARN["SVC"]["C"] == KNOBS["C"].ranges["SVC"]
    assert (default("learning_rate"), default("epochs"), default("batch_size"), default("optimizer")) == \
        (1e-3, 1, 32, "adam")


def test_pytorch_tables_take_torch_choices_then_the_architecture_then_keras_ranges():
    assert spaces.TORCH_CNN["optimizer"]["choices"] == ["adam", "adamw", "rmsprop", "sgd"]
    assert spaces.TORCH_MLP["activation"]["choices"] == ["relu", "gelu", "tanh"]
    assert spaces.TORCH_MLP["units"] == spaces.ANN["units"] and spaces.TORCH_CNN["filters"] == spaces.CNN["filters"]
    assert spaces.TORCH_CNN["dense_layers"] == KNOBS["dense_layers"].ranges["cnn"]  # the architecture before torch
    assert spaces.TORCH_CNN["learning_rate"] == spaces.KERAS["learning_rate"]
    assert spaces.builtin_table("torch", "cnn", None) is spaces.TORCH_CNN
    assert spaces.builtin_table("torch", "ann", None) is spaces.TORCH_MLP
