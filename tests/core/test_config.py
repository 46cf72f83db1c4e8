"""Config validation: defaults, and one clear line (file, key, allowed values) for each mistake."""
from __future__ import annotations

import pytest

from conftest import mlci, write_model, KNN_SOURCE
from mlci.core.config import load_config
from mlci.core.errors import ConfigError


def test_defaults_without_a_file(tmp_path):
    config, path = load_config(tmp_path / "model.py")
    assert path is None
    assert config.threshold == 0.80 and config.metric == "accuracy" and config.max_trials == 10
    assert config.strategy == "optuna" and config.runner == "local"


def test_file_next_to_the_model_is_read(tmp_path):
    (tmp_path / "mlci.toml").write_text("threshold = 0.9\nmax_trials = 3\ndataset = 'digits'\n")
    config, path = load_config(tmp_path / "model.py")
    assert path == tmp_path / "mlci.toml"
    assert (config.threshold, config.max_trials, config.dataset) == (0.9, 3, "digits")


@pytest.mark.parametrize("text, expected", [
    ("thresold = 0.9\n", ["unknown key 'thresold'", "remove it"]),
    ("max_trials = 'ten'\n", ["key 'max_trials'", "'ten'", "integer"]),
    ("threshold = 1.5\n", ["key 'threshold'", "1.5", "(0, 1]"]),
    ("threshold = 0\n", ["key 'threshold'", "(0, 1]"]),
    ("runner = 'kubernetes'\n", ["key 'runner'", "'local'", "'docker'", "'auto'"]),
    ("[resources]\nmemory = 'lots'\n", ["key 'resources.memory'", "512m"]),
    ("threshold = \n", ["not valid TOML"]),
])
def test_bad_config_is_one_line_naming_file_and_key(tmp_path, text, expected):
    (tmp_path / "mlci.toml").write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "model.py")
    message = info.value.one_line()
    assert str(tmp_path / "mlci.toml") in message
    assert "\n" not in message
    for part in expected:
        assert part in message


def test_command_line_overrides_are_validated_too(tmp_path):
    with pytest.raises(ConfigError, match="command-line options: key 'threshold'"):
        load_config(tmp_path / "model.py", overrides={"threshold": 2.0})


def test_cli_exit_code_2_and_store_untouched(tmp_path, home):
    model = write_model(tmp_path / "m", KNN_SOURCE, "knn.py", "threshold = 1.5\n")
    done = mlci("run", str(model), "--home", str(home))
    assert done.returncode == 2
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert lines == [f"mlci: error: {model.parent / 'mlci.toml'}: key 'threshold' = 1.5 is out of range; "
                     "allowed: a number in (0, 1], e.g. 0.8"]
    assert not home.exists()
