"""A Keras model module's first proposals are cheap before expensive: a promising model for a few epochs,
then the same model for longer, then TPE (the middle of the space trained 10 epochs at once)."""
from __future__ import annotations

from conftest import ROOT
from mlci.core.store import RunStore
from mlci.orchestration.runs import prepare_run
from mlci.tuning.tweak import tweak


def proposals(model, home, count):
    run, config = prepare_run(model, store=RunStore(home), overrides={"max_trials": 20, "threshold": 0.99})
    return [tweak(run, config).hparams() for _ in range(count)]


def test_a_dense_module_first_trains_a_wider_model_for_a_few_epochs_then_longer(home):
    first, second, third = proposals(ROOT / "models/mnist_ann/mnist_ann.py", home, 3)
    assert [first.proposed_by, second.proposed_by, third.proposed_by] == \
        ["optuna:first-look", "optuna:first-look", "optuna:tpe"]
    assert first.hparams == {"dense_layers": 1, "units": 256, "dropout": 0.0, "learning_rate": 0.003,
                             "epochs": 3, "batch_size": 64}
    assert second.hparams == {**first.hparams, "epochs": 9}


def test_a_cnn_module_first_looks_keep_the_module_own_choices_and_fit_the_space(home):
    first, second = proposals(ROOT / "models/mnist_cnn/mnist_cnn.py", home, 2)
    assert first.hparams == {"conv_blocks": 2, "filters": 32, "kernel_size": 3, "dense_layers": 1, "units": 256,
                             "dropout": 0.0, "learning_rate": 0.003, "epochs": 3, "batch_size": 64}
    assert second.hparams["epochs"] == 9, "the second look is the first trained 3x as long (within epochs 1-10)"
