"""A plain script's proposals start from the script: no fewer layers than it has, and a proposal whose model
would not build is told to the study as failed and replaced at once, without a trial or budget spent."""
from __future__ import annotations

from conftest import write_model
from mlci.orchestration.runs import prepare_run
from mlci.core.store import RunStore
from mlci.source.shapes import build_problem
from mlci.tuning.strategies.optuna import REFUSED
from mlci.tuning.tweak import refusal, strategy_for, tweak

from test_tuning import study_of

THREE_DENSE = '''
    from tensorflow import keras
    from tensorflow.keras import layers

    (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    model = keras.Sequential([
        layers.Flatten(input_shape=(28, 28)),
        layers.Dense(64, activation="relu"),
        layers.Dense(32, activation="relu"),
        layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=1)
    print("accuracy", model.evaluate(x_test, y_test)[1])
'''

POOLED_CNN = '''
    import keras
    from keras.layers import Conv2D, Dense, Flatten, MaxPooling2D

    (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    model = keras.Sequential()
    model.add(Conv2D(8, (3, 3), activation="relu", input_shape=(28, 28, 1)))
    model.add(MaxPooling2D((8, 8)))
    model.add(Flatten())
    model.add(Dense(10, activation="softmax"))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=1)
    print("accuracy", model.evaluate(x_test, y_test)[1])
'''


def test_the_default_never_proposes_fewer_dense_layers_than_the_script_has(tmp_path, home):
    script = write_model(tmp_path / "m", THREE_DENSE, "three_dense.py")
    run, config = prepare_run(script, store=RunStore(home), overrides={"max_trials": 20})
    strategy = strategy_for(run, config)
    assert strategy.baseline["dense_layers"] == 2
    assert strategy.space["dense_layers"].low == 2, "the space starts from the script"
    for _ in range(6):
        trial = tweak(run, config)
        hparams = trial.hparams().hparams
        assert hparams["dense_layers"] >= 2
        assert refusal(script, hparams) is None


def test_a_rewrite_that_would_not_build_is_refused_and_replaced_without_spending_a_trial(tmp_path, home):
    script = write_model(tmp_path / "m", POOLED_CNN, "pooled_cnn.py")
    run, config = prepare_run(script, store=RunStore(home), overrides={"max_trials": 20})
    made = [tweak(run, config) for _ in range(6)]
    assert [t.number for t in run.trials()] == [t.number for t in made], "refused proposals leave no trial folder"
    assert all(t.hparams().hparams["conv_blocks"] == 1 for t in made)
    refused = [t for t in study_of(run).trials if REFUSED in t.user_attrs]
    assert refused and all(t.state.name == "FAIL" for t in refused)
    assert refused[0].params["conv_blocks"] >= 2
    assert "rewritten pooled_cnn.py:9: a 8x8 pooling would meet a 3x3 feature map (the model would not build)" \
        == refused[0].user_attrs[REFUSED]


def test_the_feature_map_check_follows_padding_strides_and_the_input_shape():
    assert build_problem(POOLED_CNN) is None
    grown = POOLED_CNN.replace('model.add(Flatten())', 'model.add(Conv2D(4, (5, 5)))\nmodel.add(Flatten())')
    assert build_problem(grown.replace("    ", "")) == \
        "model.py:9: a 5x5 convolution would meet a 3x3 feature map (the model would not build)"
    same = grown.replace("Conv2D(4, (5, 5))", 'Conv2D(4, (5, 5), padding="same")')
    assert build_problem(same.replace("    ", "")) is None


SGD_SCRIPT = THREE_DENSE.replace('optimizer="adam"', "optimizer=keras.optimizers.SGD(learning_rate=0.001)")


def test_an_sgd_script_starts_with_a_cheap_first_look_and_rates_fit_each_optimizer(tmp_path, home):
    from mlci.core.knobs import learning_rate_range

    script = write_model(tmp_path / "m", SGD_SCRIPT, "sgd_dense.py")
    run, config = prepare_run(script, store=RunStore(home), overrides={"max_trials": 20})
    assert strategy_for(run, config).baseline["optimizer"] == "sgd"
    first = tweak(run, config).hparams()
    assert first.proposed_by == "optuna:first-look"
    assert {k: first.hparams[k] for k in ("optimizer", "learning_rate", "epochs", "units", "dense_layers")} == {
        "optimizer": "adam", "learning_rate": 0.001, "epochs": 3, "units": 64, "dense_layers": 2}
    optimizers = set()
    for _ in range(8):
        hparams = tweak(run, config).hparams().hparams
        low, high = learning_rate_range(hparams["optimizer"])
        low = min(low, 0.001) if hparams["optimizer"] == "sgd" else low  # the script's own rate stays reachable
        assert low <= hparams["learning_rate"] <= high, hparams
        optimizers.add(hparams["optimizer"])
    assert len(optimizers) >= 2, "the optimizer is searched too"
