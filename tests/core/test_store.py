"""The run store: atomic schema-versioned JSON, stable run ids, clear errors for damaged files."""
from __future__ import annotations

import json
import os

import pytest

from mlci.core.errors import BusyError, MetricsError, UsageError
from mlci.core.store import (HparamsRecord, MetricsRecord, RunRecord, RunStore, SCHEMA_VERSION, make_run_id,
                        write_json)


def make_run(home, name="model"):
    store = RunStore(home)
    record = RunRecord(run_id=f"{name}-1", model_name=name, model_file=f"/x/{name}.py", source_dir="/x",
                       content_hash="abc")
    return store.open_run(record)


def test_json_is_atomic_and_versioned(tmp_path):
    path = tmp_path / "a" / "b.json"
    write_json(path, {"schema_version": SCHEMA_VERSION, "x": 1})
    write_json(path, HparamsRecord(trial=0, hparams={"epochs": 2}))
    data = json.loads(path.read_text())
    assert data["schema_version"] == SCHEMA_VERSION and data["hparams"] == {"epochs": 2}
    assert [p.name for p in path.parent.iterdir()] == ["b.json"]  # no temporary file left behind


def test_run_id_is_stable_per_content_or_commit(tmp_path):
    model = tmp_path / "mnist cnn.py"
    a = make_run_id(model, "hash1")
    assert a == make_run_id(model, "hash1") and a.startswith("mnist-cnn-")
    assert a != make_run_id(model, "hash2")
    assert make_run_id(model, "hash1", "c0ffee") != make_run_id(model, "hash1", "deadbeef")


def test_trials_are_numbered_and_claimed_once(tmp_path):
    run = make_run(tmp_path)
    numbers = [run.new_trial().number for _ in range(3)]
    assert numbers == [0, 1, 2]
    assert run.trial_numbers() == [0, 1, 2]


@pytest.mark.parametrize("content, expected", [
    ('{"schema_version": 1, "value": 0.9', "not valid JSON"),
    ("", "not valid JSON"),
    ('{"schema_version": 1, "value": "high"}', "key 'value' is invalid"),
    ('[1, 2]', "must be a JSON object"),
    ('{"schema_version": 99, "value": 0.9}', "newer than this mlci"),
])
def test_damaged_metrics_are_a_clear_error(tmp_path, content, expected):
    run = make_run(tmp_path)
    trial = run.new_trial()
    trial.metrics_path.write_text(content)
    with pytest.raises(MetricsError) as info:
        trial.metrics()
    message = info.value.one_line()
    assert str(trial.metrics_path) in message and expected in message
    assert ("upgrade mlci" if "newer" in expected else "train the trial again") in message


def test_missing_run_names_known_runs(tmp_path):
    make_run(tmp_path, "alpha")
    with pytest.raises(UsageError, match=r"run 'nope' not found .* known runs: alpha-1"):
        RunStore(tmp_path).run("nope")


def test_lock_refuses_a_second_holder(tmp_path):
    run = make_run(tmp_path)
    with run.lock():
        with pytest.raises(BusyError, match="in use by another mlci process"):
            with run.lock():
                pass
    with run.lock():  # released
        pass


def test_best_is_replaced_atomically(tmp_path):
    run = make_run(tmp_path)
    for value in (0.5, 0.7):
        trial = run.new_trial()
        write_json(trial.metrics_path, MetricsRecord(value=value))
        (trial.dir / "model.joblib").write_bytes(b"model %f" % value)
        run.set_best(trial)
    assert json.loads((run.best_dir / "best.json").read_text())["trial"] == 1
    assert (run.best_dir / "model.joblib").read_bytes() == b"model 0.700000"
    assert not any(p.name.startswith(".best") for p in run.dir.iterdir())
    assert os.path.isdir(run.best_dir)
