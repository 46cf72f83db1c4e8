"""The run store: atomic schema-versioned JSON, stable run ids, clear errors for damaged files."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlci.core.errors import BusyError, MetricsError, UsageError
from mlci.core.store import (HparamsRecord, MetricsRecord, RunRecord, RunStore, SCHEMA_VERSION, TrialState,
                             file_hash, make_run_id, write_json)


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


# ----------------------------------------------------------------------------- atomicity and the trial claim, raced

_REWRITER = """
import sys
from pathlib import Path
from mlci.core.store import write_json
path, rounds = Path(sys.argv[1]), int(sys.argv[2])
for n in range(rounds):
    write_json(path, {"schema_version": 1, "round": n, "rows": [str(n) * 64] * 4000})
"""


def test_a_failed_write_leaves_the_old_content_and_no_temporary_file(tmp_path):
    """A write that dies half-way (here: a value JSON cannot encode, after part of the file was produced)."""
    path = tmp_path / "run.json"
    write_json(path, {"schema_version": SCHEMA_VERSION, "status": "running"})
    before = path.read_text()
    with pytest.raises(TypeError):
        write_json(path, {"schema_version": SCHEMA_VERSION, "rows": ["x" * 70_000], "status": object()})
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


def test_a_write_replaces_the_file_by_rename_never_in_place(tmp_path):
    """A reader holding the old file keeps reading the old content: the new one is a new file renamed over it."""
    path = tmp_path / "run.json"
    write_json(path, {"schema_version": SCHEMA_VERSION, "round": 1})
    with open(path, encoding="utf-8") as held:
        write_json(path, {"schema_version": SCHEMA_VERSION, "round": 2})
        assert json.loads(held.read())["round"] == 1
    assert json.loads(path.read_text())["round"] == 2


def test_a_reader_never_sees_a_partial_file_while_another_process_rewrites_it(tmp_path):
    path = tmp_path / "big.json"
    write_json(path, {"schema_version": SCHEMA_VERSION, "round": -1})
    writer = subprocess.Popen([sys.executable, "-c", _REWRITER, str(path), "150"])
    seen, torn = set(), []
    try:
        while writer.poll() is None:
            text = path.read_text()
            try:
                seen.add(json.loads(text)["round"])
            except json.JSONDecodeError:
                torn.append(len(text))
    finally:
        writer.wait(timeout=120)
    assert writer.returncode == 0 and torn == [], f"{len(torn)} partial reads (sizes {torn[:5]})"
    assert len(seen) > 1  # the reader really ran beside the writer


_CLAIMER = """
import os, sys
from pathlib import Path
from mlci.core.store import Run, RunStore
run = Run(RunStore(sys.argv[1]), sys.argv[2])
gate = Path(sys.argv[3])
(gate.parent / f"ready-{os.getpid()}").touch()
while not gate.exists():  # every claimer starts at the same instant
    pass
print(" ".join(str(run.new_trial().number) for _ in range(int(sys.argv[4]))))
"""


def test_trial_numbers_are_claimed_exclusively_by_racing_processes(tmp_path):
    """Six processes claim 20 trials each at the same instant: 120 distinct numbers, each folder claimed once."""
    run = make_run(tmp_path)
    gates = tmp_path / "gates"
    gates.mkdir()
    claimers = [subprocess.Popen([sys.executable, "-c", _CLAIMER, str(tmp_path), run.id, str(gates / "go"), "20"],
                                 stdout=subprocess.PIPE, text=True) for _ in range(6)]
    while len(list(gates.glob("ready-*"))) < len(claimers) and all(c.poll() is None for c in claimers):
        time.sleep(0.05)
    (gates / "go").touch()
    claimed = []
    for claimer in claimers:
        out, _ = claimer.communicate(timeout=120)
        assert claimer.returncode == 0
        claimed.extend(int(n) for n in out.split())
    assert len(claimed) == 120 and sorted(claimed) == list(range(120)), "a trial number was claimed twice"
    assert run.trial_numbers() == list(range(120))


# ----------------------------------------------------------------------------- the store's rules, one by one (mutation-tested)


def test_a_snapshot_of_a_commit_names_its_run_by_the_path_inside_the_commit(tmp_path):
    a = make_run_id(tmp_path / "src" / "c0ffee" / "models" / "a" / "model.py", "h", "c0ffee")
    b = make_run_id(tmp_path / "src" / "c0ffee" / "models" / "b" / "model.py", "h", "c0ffee")
    top = make_run_id(tmp_path / "src" / "c0ffee" / "model.py", "h", "c0ffee")
    assert len({a, b, top}) == 3 and all(r.startswith("model-") and len(r) == len("model-") + 10 for r in (a, b, top))
    assert make_run_id(tmp_path / "elsewhere" / "model.py", "h", "c0ffee") == top  # outside a snapshot: the name
    assert make_run_id(tmp_path / "+++.py", "h").startswith("model-")  # nothing left of the stem


def test_file_hash_is_the_sha256_of_the_content(tmp_path):
    import hashlib

    path = tmp_path / "big.bin"
    content = os.urandom((1 << 20) + 17)  # more than one block
    path.write_bytes(content)
    assert file_hash(path) == hashlib.sha256(content).hexdigest()


def test_a_waiting_lock_gives_up_after_its_timeout_with_the_busy_error(tmp_path):
    run = make_run(tmp_path)
    with run.lock():
        with pytest.raises(BusyError) as info:
            with run.lock(timeout=0.3):
                pass
    assert info.value.one_line() == ("run model-1 is in use by another mlci process; wait for the other mlci "
                                     "process to finish, then run the command again")
    with run.lock(wait=True):  # released, and waiting for a free lock returns at once
        pass


def test_a_trial_status_is_its_trial_json_except_metrics_without_it_count_as_succeeded(tmp_path):
    run = make_run(tmp_path)
    trial = run.new_trial()
    assert trial.state() == TrialState(trial=0) and trial.status() == "pending"
    write_json(trial.metrics_path, MetricsRecord(value=0.5))
    assert trial.status() == "succeeded"
    assert trial.update_state(status="failed", exit_code=137).status == "failed"  # validated into the enum
    assert (trial.status(), trial.state().exit_code) == ("failed", 137)
    trial.update_state(status="running")
    assert trial.status() == "running"


def test_the_model_artifact_prefers_keras_then_joblib(tmp_path):
    run = make_run(tmp_path)
    trial = run.new_trial()
    assert trial.model_artifact() is None
    (trial.dir / "model.joblib").write_bytes(b"j")
    assert trial.model_artifact() == trial.dir / "model.joblib"
    (trial.dir / "model.keras").write_bytes(b"k")
    assert trial.model_artifact() == trial.dir / "model.keras"
    assert repr(trial) == "Trial(model-1#0)" and repr(run) == "Run(model-1)"


def test_a_trial_spec_takes_the_run_settings_and_its_optuna_link(tmp_path):
    from mlci.core.config import Config
    from mlci.core.store import OptunaLink, write_trial_spec

    run = make_run(tmp_path)
    trial = run.new_trial()
    trial.write_hparams(HparamsRecord(trial=0, hparams={"k": 1}, optuna=OptunaLink(study="s", trial=3)))
    config = Config(metric="loss", dataset="digits", seed=7)
    spec = write_trial_spec(trial, config)
    assert (spec.metric, spec.dataset, spec.seed, spec.hparams) == ("loss", "digits", 7, {"k": 1})
    assert trial.hparams() == spec and spec.data == config.data and spec.data is not config.data
    assert spec.optuna_link() == {"study": "s", "trial": 3}
    assert HparamsRecord(trial=1, hparams={}).optuna_link() == {}


def test_runs_are_listed_oldest_first_and_an_open_run_keeps_its_history(tmp_path):
    first = make_run(tmp_path, "alpha")
    os.utime(first.record_path, (1_000_000, 1_000_000))
    second = make_run(tmp_path, "beta")
    (tmp_path / "runs" / "not-a-run").mkdir()
    assert [r.id for r in RunStore(tmp_path).runs()] == ["alpha-1", "beta-1"]
    first.update(status="running", best_trial=2)
    again = make_run(tmp_path, "alpha")  # the same id: continued, not reset
    assert (again.record().status, again.record().best_trial) == ("running", 2)
    assert RunStore(tmp_path / "empty").runs() == [] and second.trials() == []


def test_writing_a_run_record_stamps_updated_at(tmp_path):
    run = make_run(tmp_path)
    record = run.record()
    record.updated_at = "2000-01-01T00:00:00+00:00"
    run.write_record(record)
    assert run.record().updated_at != "2000-01-01T00:00:00+00:00"


def test_the_default_home_is_mlci_home_else_dot_mlci(monkeypatch, tmp_path):
    from mlci.core.store import default_home

    monkeypatch.delenv("MLCI_HOME", raising=False)
    assert default_home() == Path(".mlci") and RunStore().home == Path(".mlci")
    monkeypatch.setenv("MLCI_HOME", str(tmp_path))
    assert default_home() == tmp_path and RunStore().runs_dir == tmp_path / "runs"


def test_a_missing_or_unreadable_record_names_the_file_and_the_fix(tmp_path):
    run = make_run(tmp_path)
    trial = run.new_trial()
    with pytest.raises(MetricsError) as missing:
        trial.metrics()
    assert missing.value.one_line().startswith(f"{trial.metrics_path}: metrics.json not found; train the trial again")
    trial.hparams_path.mkdir()
    with pytest.raises(UsageError) as unreadable:
        trial.hparams()
    assert f"{trial.hparams_path}: hparams.json cannot be read (" in unreadable.value.one_line()
    trial.state_path.write_text('{"trial": 0, "status": "exploded"}')
    with pytest.raises(UsageError) as invalid:
        trial.state()
    assert "trial.json key 'status' is invalid" in invalid.value.one_line()
    assert "delete it to let mlci treat the trial as pending" in invalid.value.one_line()


def test_best_keeps_only_the_files_of_the_best_trial(tmp_path):
    run = make_run(tmp_path)
    first, second = run.new_trial(), run.new_trial()
    for trial, value in ((first, 0.5), (second, 0.7)):
        write_json(trial.metrics_path, MetricsRecord(value=value))
        write_json(trial.hparams_path, HparamsRecord(trial=trial.number, hparams={"v": value}))
    (first.dir / "model.keras").write_bytes(b"keras")
    (first.dir / "log.txt").write_text("not copied")
    run.set_best(first)
    assert sorted(p.name for p in run.best_dir.iterdir()) == ["best.json", "hparams.json", "metrics.json",
                                                              "model.keras"]
    run.set_best(second)
    assert sorted(p.name for p in run.best_dir.iterdir()) == ["best.json", "hparams.json", "metrics.json"]
    assert json.loads((run.best_dir / "hparams.json").read_text())["hparams"] == {"v": 0.7}
