"""The run store: atomic schema-versioned JSON, stable run ids, clear errors for damaged files."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from mlci.core.errors import BusyError, MetricsError, UsageError
from mlci.core.store import (HparamsRecord, MetricsRecord, RunRecord, RunStore, SCHEMA_VERSION, TrialState,
                             file_hash, make_run_id, read_record, write_json)


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
    ('{"schema_version": 1, "value": 1.5}', "is invalid (value 1.5 is out of range for accuracy"),
])
def test_damaged_metrics_are_a_clear_error(tmp_path, content, expected):
    run = make_run(tmp_path)
    trial = run.new_trial()
    trial.metrics_path.write_text(content)
    with pytest.raises(MetricsError) as info:
        trial.metrics()
    message = info.value.one_line()
    assert str(trial.metrics_path) in message and expected in message
    assert message.endswith("; upgrade mlci" if "newer" in expected else
                            "; train the trial again: delete it and trial.json next to it, then `mlci launch --run "
                            "model-1` and `mlci wait --run model-1 --trial 0`")


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
    config = Config(metric="loss", dataset="digits", seed=7, data={"accuracy_files": ["acc.txt"]})
    spec = write_trial_spec(trial, config)
    assert (spec.metric, spec.dataset, spec.seed, spec.hparams) == ("loss", "digits", 7, {"k": 1})
    assert trial.hparams() == spec and spec.data.accuracy_files == ["acc.txt"] and spec.data == config.data
    spec.data.accuracy_files.append("score.txt")  # the spec's [data] is its own: the run's config is unchanged
    assert config.data.accuracy_files == ["acc.txt"]
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
    assert unreadable.value.one_line().endswith("; rewrite it with `mlci tweak`, or fix the value by hand")
    trial.state_path.write_text('{"trial": 0, "status": "exploded"}')
    with pytest.raises(UsageError) as invalid:
        trial.state()
    assert "trial.json key 'status' is invalid" in invalid.value.one_line()
    assert invalid.value.one_line().endswith("; delete it to let mlci treat the trial as pending")


def test_best_keeps_only_the_files_of_the_best_trial(tmp_path):
    run = make_run(tmp_path)
    first, second = run.new_trial(), run.new_trial()
    for trial, value in ((first, 0.5), (second, 0.7)):
        write_json(trial.metrics_path, MetricsRecord(value=value))
        write_json(trial.hparams_path, HparamsRecord(trial=trial.number, hparams={"v": value}))
    (first.dir / "model.keras").write_bytes(b"keras")
    (first.dir / "model.py").write_text("# the script as this trial rewrote it")
    (first.dir / "log.txt").write_text("not copied")
    run.set_best(first)
    assert sorted(p.name for p in run.best_dir.iterdir()) == ["best.json", "hparams.json", "metrics.json",
                                                              "model.keras", "model.py"]
    assert json.loads((run.best_dir / "best.json").read_text()) == {"schema_version": SCHEMA_VERSION, "trial": 0}
    run.set_best(second)
    assert sorted(p.name for p in run.best_dir.iterdir()) == ["best.json", "hparams.json", "metrics.json"]
    assert json.loads((run.best_dir / "hparams.json").read_text())["hparams"] == {"v": 0.7}


# ----------------------------------------------------------------------------- what the mutation score found untested


def test_the_store_stamps_times_in_utc_to_the_second(tmp_path):
    from datetime import datetime, timedelta

    run = make_run(tmp_path)
    for stamp in (run.record().created_at, run.record().updated_at, MetricsRecord(value=0.5).finished_at):
        parsed = datetime.fromisoformat(stamp)
        assert parsed.utcoffset() == timedelta(0) and parsed.microsecond == 0, stamp
        assert stamp.endswith("+00:00") and len(stamp) == len("2026-11-30T12:00:00+00:00")


@pytest.mark.parametrize("run_id", [".", "..", "../other", "a/b", "", "-rf", "run id", 7])
def test_a_run_id_is_a_name_inside_runs_never_a_path(tmp_path, run_id):
    make_run(tmp_path)
    with pytest.raises(UsageError) as info:
        RunStore(tmp_path).run(run_id)
    assert info.value.one_line() == (f"{run_id!r} is not a run id; pass an id as `mlci runs` lists it (letters, "
                                     "digits, '-', '_', '.'; no path)")


def test_a_long_bad_run_id_is_shown_shortened_to_80_characters(tmp_path):
    from mlci.core.store import check_run_id

    fits = "/" + "a" * 77  # its repr is 80 characters: shown whole
    with pytest.raises(UsageError) as whole:
        check_run_id(fits)
    assert whole.value.message == f"{fits!r} is not a run id"
    with pytest.raises(UsageError) as cut:
        check_run_id(fits + "b")
    assert cut.value.message == f"{(fits + 'b')!r}"[:77] + "... is not a run id"
    assert check_run_id("digits_knn-0123456789") == "digits_knn-0123456789"


def test_a_run_id_keeps_the_model_name_with_its_capitals(tmp_path):
    assert make_run_id(tmp_path / "MnistCNN.py", "h").startswith("MnistCNN-")
    assert make_run_id(tmp_path / "(X-ray model).py", "h").startswith("X-ray-model-")


def test_the_known_runs_of_a_missing_run_are_the_five_latest_or_none(tmp_path):
    with pytest.raises(UsageError, match=r"known runs: none; start one with `mlci run MODEL_FILE`"):
        RunStore(tmp_path).run("nope")
    for age, name in enumerate("abcdef"):
        os.utime(make_run(tmp_path, name).record_path, (1_000_000 + age, 1_000_000 + age))
    with pytest.raises(UsageError) as info:
        RunStore(tmp_path).run("nope")
    assert "known runs: b-1, c-1, d-1, e-1, f-1; start one" in info.value.one_line()


def test_stray_files_and_folders_in_trials_are_not_trials_and_a_taken_number_is_passed_over(tmp_path):
    """The claim is a mkdir: a number whose name is taken (here by a stray file; in a race, by another
    process's claim) is passed over, never shared."""
    run = make_run(tmp_path)
    run.new_trial()
    (run.dir / "trials" / "1").write_text("a file named like a trial")
    (run.dir / "trials" / "tmp").mkdir()
    assert run.trial_numbers() == [0]
    assert [run.new_trial().number, run.new_trial().number] == [2, 3]
    assert run.trial_numbers() == [0, 2, 3]


def test_a_trial_whose_metrics_are_corrupt_is_failed_with_the_reason(tmp_path):
    run = make_run(tmp_path)
    trial = run.new_trial()
    assert trial.metrics_problem() is None  # no metrics yet: nothing wrong with them
    write_json(trial.metrics_path, MetricsRecord(value=0.5))
    trial.update_state(status="succeeded")
    assert trial.metrics_problem() is None and trial.status() == "succeeded"
    trial.metrics_path.write_text('{"value": 1.5}')
    assert trial.status() == "failed"
    assert trial.metrics_problem() == (f"{trial.metrics_path}: metrics.json is invalid (value 1.5 is out of range "
                                       "for accuracy: a score lies in [0, 1])")


def test_a_damaged_run_json_or_hparams_json_says_how_to_fix_it(tmp_path):
    run = make_run(tmp_path)
    trial = run.new_trial()
    trial.hparams_path.write_text("{")
    with pytest.raises(UsageError) as hparams:
        trial.hparams()
    assert hparams.value.hint == "rewrite it with `mlci tweak`, or fix the value by hand"
    damaged = json.loads(run.record_path.read_text())
    damaged["config"]["max_trials"] = 0
    run.record_path.write_text(json.dumps(damaged))
    with pytest.raises(UsageError) as record:
        run.record()
    assert record.value.one_line().startswith(f"{run.record_path}: run.json key 'config.max_trials' is invalid (input "
                                              "should be greater than or equal to 1, got 0); start the run again "
                                              f"with `mlci run` (the store is {tmp_path})")


def test_an_invalid_value_is_shown_shortened_and_a_deep_file_is_refused(tmp_path):
    path = tmp_path / "trial.json"
    path.write_text(json.dumps({"trial": "x" * 200}))
    with pytest.raises(UsageError) as long:
        read_record(path, TrialState, what="trial.json", fix="fix it")
    shown = repr("x" * 200)[:77] + "..."
    assert long.value.message == f"{path}: trial.json key 'trial' is invalid (input should be a valid integer, " \
                                 f"unable to parse string as an integer, got {shown})"
    path.write_text(json.dumps({"trial": "x" * 79}))  # its repr is 81 characters: shortened
    with pytest.raises(UsageError, match=r"got '" + "x" * 76 + r"\.\.\.\); fix it$"):
        read_record(path, TrialState, what="trial.json", fix="fix it")
    path.write_text(json.dumps({"trial": "x" * 78}))  # its repr is 80 characters: shown whole
    with pytest.raises(UsageError, match=r"got '" + "x" * 78 + r"'\); fix it$"):
        read_record(path, TrialState, what="trial.json", fix="fix it")
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(UsageError) as deep:
        read_record(path, TrialState, what="trial.json", fix="fix it")
    assert deep.value.one_line() == f"{path}: trial.json is nested too deeply to be a record of mlci; fix it"


def test_a_file_where_the_store_needs_a_folder_or_the_reverse_is_one_line(tmp_path):
    from mlci.core.errors import StoreError

    folder_hint = "a file stands where the run store needs a folder (or the reverse): move it away"
    run = make_run(tmp_path)
    (run.dir / "trials").write_text("")
    with pytest.raises(StoreError) as trials:
        run.new_trial()
    assert trials.value.one_line() == f"{run.dir / 'trials'}: cannot be created (File exists); {folder_hint}"
    (run.dir / "extra").write_text("")
    with pytest.raises(StoreError) as parent:
        write_json(run.dir / "extra" / "x.json", {"schema_version": SCHEMA_VERSION})
    assert parent.value.one_line() == f"{run.dir / 'extra' / 'x.json'}: cannot be written (File exists); {folder_hint}"
    (run.dir / "run-folder.json").mkdir()
    before = sorted(p.name for p in run.dir.iterdir())
    with pytest.raises(StoreError) as folder:
        write_json(run.dir / "run-folder.json", {"schema_version": SCHEMA_VERSION})
    assert folder.value.one_line() == (f"{run.dir / 'run-folder.json'}: cannot be written (Is a directory); a folder "
                                       "stands where the run store needs a file: move it away")
    assert sorted(p.name for p in run.dir.iterdir()) == before  # no temporary file left behind

    (tmp_path / "file-store").mkdir()
    (tmp_path / "file-store" / "runs").write_text("")
    with pytest.raises(StoreError) as runs:
        RunStore(tmp_path / "file-store").run("model-1")
    assert runs.value.one_line() == (f"{tmp_path / 'file-store' / 'runs'}: cannot hold the run (a file, not a "
                                     f"folder); {folder_hint}")
    with pytest.raises(StoreError) as created:
        make_run(tmp_path / "file-store")
    assert created.value.one_line() == (f"{tmp_path / 'file-store' / 'runs' / 'model-1'}: cannot be created "
                                        f"(Not a directory); {folder_hint}")
    (run.dir.parent / "other-1").write_text("")
    with pytest.raises(StoreError, match=r"/runs/other-1: cannot hold the run \(a file, not a folder\)"):
        RunStore(tmp_path).run("other-1")


@contextlib.contextmanager
def as_another_user():
    """The permissions of another user inside this process (root ignores them): the effective uid only, so the
    process gets root back."""
    if os.geteuid() != 0:
        yield
        return
    os.setegid(65534)
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


def test_a_store_the_user_may_not_write_says_so_in_one_line_per_failure():
    """A trial, the list of runs and a record that cannot be made: each one line naming the path, with what to do."""
    from mlci.core.errors import StoreError

    shared = Path(tempfile.mkdtemp(prefix="mlci-store-"))  # pytest's tmp_path is private to its user
    run = make_run(shared / "store")
    (run.dir / "trials").mkdir()
    for path in (shared, shared / "store", run.dir / "trials", run.dir):
        path.chmod(0o555)
    (shared / "store" / "runs").chmod(0o111)  # may pass through, may not list
    lines = []
    try:
        with as_another_user():
            store = RunStore(shared / "store")
            for attempt in (store.run(run.id).new_trial, store.runs,
                            lambda: write_json(run.dir / "extra.json", {"schema_version": SCHEMA_VERSION})):
                with pytest.raises(StoreError) as info:
                    attempt()
                lines.append(info.value.one_line())
    finally:
        for path in (shared, shared / "store", shared / "store" / "runs", run.dir, run.dir / "trials"):
            path.chmod(0o755)
        shutil.rmtree(shared, ignore_errors=True)
    fix = "check the permissions and free space of the run store (--home / MLCI_HOME)"
    assert lines == [f"{run.dir / 'trials' / '0'}: cannot be created (Permission denied); {fix}",
                     f"{shared / 'store' / 'runs'}: cannot be listed (Permission denied); {fix}",
                     f"{run.dir / 'extra.json'}: cannot be written (Permission denied); {fix}"]


def test_run_ids_stay_the_same_from_one_mlci_version_to_the_next():
    """A store made by an older mlci is continued, not started again: the id of a (model, content or commit)
    never changes (these ids are the ones mlci has always made)."""
    commit = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"
    model = Path("/home/dev/models/mnist_cnn.py")
    assert make_run_id(model, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") == "mnist_cnn-f85207bd59"
    assert make_run_id(model, "e3b0c4", commit) == "mnist_cnn-9c0f486346"
    assert make_run_id(Path(f"/var/cache/mlci/src/{commit}/models/a/model.py"), "e3b0c4", commit) == "model-3b342e5b85"


def test_a_lock_asked_without_waiting_is_refused_at_once_even_if_it_is_freed_soon(tmp_path):
    import threading

    run = make_run(tmp_path)
    held, release = threading.Event(), threading.Event()

    def holder():
        with run.lock():
            held.set()
            release.wait(10)
            time.sleep(0.3)

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait(10)
    try:
        release.set()  # the holder lets go 0.3 s from now: `mlci` without --wait does not wait for it
        with pytest.raises(BusyError):
            with run.lock():
                pass
    finally:
        thread.join()


def test_a_run_folder_left_without_run_json_is_opened_as_a_new_run(tmp_path):
    (tmp_path / "runs" / "model-1" / "trials").mkdir(parents=True)  # a run whose first write never happened
    run = make_run(tmp_path)
    assert run.record().model_name == "model" and RunStore(tmp_path).run("model-1").dir == run.dir


def test_a_write_makes_its_temporary_file_beside_the_target_not_in_the_system_temp_folder(tmp_path, monkeypatch):
    """The rename is atomic only inside one file system: the temporary file never goes to $TMPDIR."""
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-temp-folder"))
    path = tmp_path / "deep" / "er" / "run.json"
    write_json(path, {"schema_version": SCHEMA_VERSION, "round": 1})
    assert json.loads(path.read_text())["round"] == 1


def test_records_are_written_for_people_to_read_one_key_a_line_in_their_order(tmp_path):
    path = tmp_path / "hparams.json"
    write_json(path, HparamsRecord(trial=3, hparams={"units": 64}))
    text = path.read_text()
    assert text.startswith('{\n  "schema_version": 1,\n  "trial": 3,\n  "hparams": {\n    "units": 64\n  },\n')
    assert text.endswith("}\n")


def test_a_waiting_lock_is_taken_once_its_holder_lets_go(tmp_path):
    import threading

    run = make_run(tmp_path)
    held, released, taken = threading.Event(), [], []

    def holder():
        with run.lock():
            held.set()
            time.sleep(0.5)
            released.append(True)

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait(10)
    with run.lock(wait=True):
        taken.append(list(released))
    thread.join()
    assert taken == [[True]]  # it waited for the holder, then got the lock


def test_a_folder_where_the_run_lock_belongs_is_one_line(tmp_path):
    from mlci.core.errors import StoreError

    run = make_run(tmp_path)
    (run.dir / ".lock").mkdir()
    with pytest.raises(StoreError) as info:
        with run.lock():
            pass
    assert info.value.one_line() == (f"{run.dir / '.lock'}: cannot be opened as a lock file (Is a directory); a folder "
                                     "stands where the run store needs a file: move it away")


def test_best_is_made_whole_again_after_a_crash_left_its_staging_folders(tmp_path):
    """A process killed inside set_best leaves .best.tmp (half copied) or .best.old (the previous best): the
    next set_best starts clean and leaves neither."""
    run = make_run(tmp_path)
    trial = run.new_trial()
    write_json(trial.metrics_path, MetricsRecord(value=0.5))
    run.set_best(trial)  # a best/ there already
    for leftover in (".best.tmp", ".best.old"):
        (run.dir / leftover).mkdir()
        (run.dir / leftover / "model.keras").write_bytes(b"half copied")
    run.set_best(trial)
    assert sorted(p.name for p in run.best_dir.iterdir()) == ["best.json", "metrics.json"]
    assert not (run.dir / ".best.tmp").exists() and not (run.dir / ".best.old").exists()


def test_run_json_spells_the_config_keys_as_mlci_toml_does(tmp_path):
    """`from` of [notify] is `from_` in Python; run.json, which people read beside mlci.toml, says `from`."""
    store = RunStore(tmp_path)
    run = store.open_run(RunRecord(run_id="model-1", model_name="model", model_file="/x/model.py", source_dir="/x",
                                   content_hash="abc", config={"notify": {"from": "ci@example.com"}}))
    run.update(status="running")
    notify = json.loads(run.record_path.read_text())["config"]["notify"]
    assert notify["from"] == "ci@example.com" and "from_" not in notify
    assert run.record().config.notify.from_ == "ci@example.com"


def _best_seen_at_each_rename(run, trial, monkeypatch) -> list[bool]:
    """set_best(trial) with every os.replace spied: whether best/ existed right after each one."""
    import os

    seen, replace = [], os.replace

    def spy(src, dst):
        replace(src, dst)
        seen.append(run.best_dir.is_dir())

    monkeypatch.setattr(os, "replace", spy)
    run.set_best(trial)
    monkeypatch.setattr(os, "replace", replace)
    return seen


def test_a_new_best_replaces_the_old_with_no_moment_without_a_best_folder(tmp_path, monkeypatch):
    """A reader (Jenkins archiving best/, `mlci status`) never finds best/ missing while a better trial moves in:
    the folders are exchanged in one step, not renamed away and back."""
    run = make_run(tmp_path)
    first, second = run.new_trial(), run.new_trial()
    for trial, value in ((first, 0.5), (second, 0.7)):
        write_json(trial.metrics_path, MetricsRecord(value=value))
    run.set_best(first)
    assert all(_best_seen_at_each_rename(run, second, monkeypatch))
    assert json.loads((run.best_dir / "metrics.json").read_text())["value"] == 0.7
    assert sorted(p.name for p in run.dir.iterdir() if p.name.startswith(".best")) == []


def test_where_folders_cannot_be_exchanged_best_is_replaced_by_two_renames(tmp_path, monkeypatch):
    """On a file system without RENAME_EXCHANGE (NFS answers EINVAL) the new best still replaces the old."""
    import errno

    from mlci.core import _files

    def cannot(first, second):
        raise OSError(errno.EINVAL, "Invalid argument")

    run = make_run(tmp_path)
    first, second = run.new_trial(), run.new_trial()
    for trial, value in ((first, 0.5), (second, 0.7)):
        write_json(trial.metrics_path, MetricsRecord(value=value))
    run.set_best(first)
    monkeypatch.setattr(_files, "_exchange", cannot)
    assert _best_seen_at_each_rename(run, second, monkeypatch)[-2:] == [False, True]  # the moment without it
    assert json.loads((run.best_dir / "metrics.json").read_text())["value"] == 0.7
    assert sorted(p.name for p in run.dir.iterdir() if p.name.startswith(".best")) == []
