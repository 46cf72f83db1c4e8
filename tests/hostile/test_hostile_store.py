"""A damaged or hostile run store: corrupt records, folders where files belong, a store the user may not
write, and a second `mlci run` refused while the first holds the run.

Every case: the documented exit code, one error line and no traceback, the damaged file left as it was
(nothing is lost), and the user's folder unchanged.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest

from hostile_kit import RUN_ID, Untouched, assert_refused, cli, make_store, mlci_process, write_model
from mlci.core.store import RunStore


@pytest.fixture
def user(tmp_path) -> Path:
    return write_model(tmp_path / "user")


@pytest.fixture
def run(tmp_path, user):
    return make_store(tmp_path / "store", user)


CORRUPT_JSON = {
    "empty": b"",
    "truncated": b'{"run_id": "x", "sta',
    "an array": b"[1, 2, 3]",
    "a number": b"1e308",
    "deeply nested": b"[" * 100_000 + b"]" * 100_000,
    "invalid utf-8": b'{"a": "\xff\xfe"}',
    "newer schema": b'{"schema_version": 99}',
    "NaN everywhere": b'{"value": NaN, "trial": NaN}',
}


@pytest.mark.parametrize("name", list(CORRUPT_JSON))
def test_a_corrupt_run_json_is_one_line_and_kept(run, tmp_path, name):
    run.record_path.write_bytes(CORRUPT_JSON[name])
    with Untouched(tmp_path / "store", tmp_path / "user"):
        said = cli("status", "--run", RUN_ID, "--home", tmp_path / "store")
    assert_refused(said, 2, "run.json")


@pytest.mark.parametrize("command", [["history"], ["report"], ["check"], ["tweak"], ["launch"], ["notify"]])
def test_every_command_reads_a_corrupt_run_json_as_one_line(run, tmp_path, command):
    run.record_path.write_text('{"run_id": ')
    with Untouched(tmp_path / "store", tmp_path / "user"):
        said = cli(*command, "--run", RUN_ID, "--home", tmp_path / "store")
    assert_refused(said, 2, "run.json")


@pytest.mark.parametrize("field, value", [("status", "bogus"), ("config", {"max_trials": True}),
                                          ("config", {"max_minutes": "inf"}), ("best_value", "high"),
                                          ("kind", [1, 2])])
def test_a_run_json_with_wrong_values_names_the_key(run, tmp_path, field, value):
    data = json.loads(run.record_path.read_text())
    data[field] = value
    run.record_path.write_text(json.dumps(data))
    with Untouched(tmp_path / "store"):
        said = cli("status", "--run", RUN_ID, "--home", tmp_path / "store")
    assert_refused(said, 2, field)


@pytest.mark.parametrize("name", ["truncated", "an array", "deeply nested", "newer schema"])
def test_a_corrupt_trial_json_is_one_line(run, tmp_path, name):
    run.trial(1).state_path.write_bytes(CORRUPT_JSON[name])
    with Untouched(tmp_path / "store"):
        said = cli("check", "--run", RUN_ID, "--trial", "1", "--home", tmp_path / "store")
    assert_refused(said, 2, "trial.json")


@pytest.mark.parametrize("content", ['{"value": 1e308}', '{"value": -0.5}', '{"value": "high"}', '{"value": Infinity}',
                                     '{"value": 0.9, "accuracy": 7}', '{"trial": 1', "[]"])
def test_a_corrupt_metrics_json_is_a_clear_failure_not_a_success(run, tmp_path, content):
    run.trial(1).metrics_path.write_text(content)
    with Untouched(tmp_path / "store"):
        said = cli("check", "--run", RUN_ID, "--trial", "1", "--home", tmp_path / "store")
        history = cli("history", "--run", RUN_ID, "--home", tmp_path / "store")
    assert_refused(said, 6, "metrics.json")
    row = next(line for line in history.stdout.splitlines() if line.startswith("│ 1 "))
    assert "failed" in row and "succeeded" not in row, history.stdout


def test_a_metric_of_1e308_never_makes_a_run_met(tmp_path, user):
    """The oracle reads the out-of-range metric as no measurement: the run stays below the threshold."""
    from mlci.orchestration.oracle import RunOracle

    run = make_store(tmp_path / "store", user, max_trials=3)
    run.trial(1).metrics_path.write_text('{"value": 1e308, "metric": "accuracy"}')
    oracle = RunOracle(run)
    assert oracle.best()[1] == 0.91
    assert not oracle.objective.met(oracle.best()[1])
    oracle.tell()
    said = cli("status", "--run", RUN_ID, "--home", tmp_path / "store", "--json")
    assert said.code == 0 and json.loads(said.stdout)["best_value"] == 0.91
    assert json.loads(said.stdout)["status"] != "met"


def test_a_corrupt_hparams_json_shows_its_trial_and_counts_against_the_budget(tmp_path, user):
    run = make_store(tmp_path / "store", user, max_trials=2, status="running")
    run.trial(1).hparams_path.write_text("{not json")
    history = cli("history", "--run", RUN_ID, "--home", tmp_path / "store")
    assert history.code == 0
    assert any(line.startswith("│ 1 ") and "failed" in line for line in history.stdout.splitlines()), history.stdout
    tweak = cli("tweak", "--run", RUN_ID, "--home", tmp_path / "store")
    assert tweak.code == 3, tweak.stdout + tweak.stderr  # budget spent: 2 trials proposed, one unreadable
    assert "max_trials (2) reached" in tweak.stdout
    assert run.trial_numbers() == [0, 1]
    assert run.trial(1).hparams_path.read_text() == "{not json"  # kept for a person to look at


def test_a_corrupt_pending_proposal_fails_its_trial_with_the_reason(tmp_path, user):
    run = make_store(tmp_path / "store", user, max_trials=5, status="running")
    trial = run.new_trial()
    trial.hparams_path.write_text("[]")
    said = cli("launch", "--run", RUN_ID, "--home", tmp_path / "store", "--runner", "local")
    assert "Traceback" not in said.stderr
    assert trial.state().status == "failed" and "hparams.json" in trial.state().reason


def test_one_corrupt_run_json_does_not_hide_the_other_runs(tmp_path, user):
    make_store(tmp_path / "store", user)
    broken = make_store(tmp_path / "store", user, run_id="broken-0000000000")
    broken.record_path.write_text("{")
    with Untouched(tmp_path / "store"):
        said = cli("runs", "--home", tmp_path / "store")
    assert said.code == 0
    assert RUN_ID in said.stdout and "broken-0000000000" in said.stdout and "unreadable" in said.stdout
    assert "Traceback" not in said.stderr


@pytest.mark.parametrize("where", ["runs", "runs/ID", "runs/ID/trials"])
def test_a_file_where_the_store_needs_a_folder_is_one_line(tmp_path, user, where):
    home = tmp_path / "store"
    if where != "runs":
        make_store(home, user, max_trials=5, status="running")
    target = home / where.replace("ID", RUN_ID)
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("in the way\n")
    with Untouched(home, tmp_path / "user"):
        said = cli("launch" if where != "runs" else "runs", "--home", home,
                   *(["--run", RUN_ID] if where != "runs" else []))
    if where == "runs":
        assert said.code == 0 and "Traceback" not in said.stderr  # no runs to list
        said = cli("status", "--run", RUN_ID, "--home", home)
    assert_refused(said, 2, str(target))


def test_a_lock_that_is_a_folder_is_one_line(tmp_path, user):
    run = make_store(tmp_path / "store", user, max_trials=5, status="running")
    (run.dir / ".lock").mkdir()
    with Untouched(tmp_path / "store", tmp_path / "user"):
        said = cli("tweak", "--run", RUN_ID, "--home", tmp_path / "store")
    assert_refused(said, 2, ".lock")


def test_an_outbox_lock_that_is_a_folder_is_one_line(tmp_path, user):
    run = make_store(tmp_path / "store", user)
    (run.outbox / ".lock").mkdir(parents=True)
    said = cli("notify", "--run", RUN_ID, "--home", tmp_path / "store")
    assert_refused(said, 2, ".lock")


def test_a_run_folder_without_run_json_is_not_a_run(tmp_path, user):
    make_store(tmp_path / "store", user)
    (tmp_path / "store" / "runs" / "stray").mkdir()
    (tmp_path / "store" / "runs" / "stray" / "run.json").mkdir()  # a folder named run.json
    said = cli("runs", "--home", tmp_path / "store")
    assert said.code == 0 and "stray" not in said.stdout


# ----------------------------------------------------------------------------- a store the user may not write


@pytest.fixture
def shared_tmp():
    """A folder another user can reach (pytest's own tmp folder is private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="mlci-hostile-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


NOBODY = 65534


def test_a_read_only_store_is_one_line_and_the_run_is_not_left_running(shared_tmp):
    user = write_model(shared_tmp / "user")
    run = make_store(shared_tmp / "store", user, max_trials=2)
    for path in [shared_tmp, *shared_tmp.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    env = {"MLCI_CACHE": str(shared_tmp / "cache"), "HOME": str(shared_tmp)}
    with Untouched(shared_tmp / "store", shared_tmp / "user"):
        said = mlci_process("run", user, "--home", shared_tmp / "store", "--max-trials", "4", "-q", "--no-notify",
                            user=NOBODY, env=env)
    assert_refused(said, 2, "store")
    assert run.record().status == "exhausted"


def test_a_read_only_trials_folder_ends_the_run_failed_not_running(shared_tmp):
    from mlci.core.store import file_hash, make_run_id

    user = write_model(shared_tmp / "user")
    run_id = make_run_id(user.resolve(), file_hash(user))
    run = make_store(shared_tmp / "store", user.resolve(), max_trials=4, run_id=run_id)
    write_model(shared_tmp / "user", config='dataset = "digits"\nmax_trials = 4\nstrategy = "ladder"\n'
                'runner = "local"\nthreshold = 0.99\n')
    for path in [shared_tmp, *shared_tmp.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    # run.json, the lock and the outbox are writable; the trials folder is not
    for path in [run.dir, run.record_path]:
        path.chmod(0o777 if path.is_dir() else 0o666)
    (run.dir / ".lock").touch(mode=0o666)
    (run.dir / ".lock").chmod(0o666)
    env = {"MLCI_CACHE": str(shared_tmp / "cache"), "HOME": str(shared_tmp)}
    with Untouched(shared_tmp / "user"):
        said = mlci_process("run", user, "--home", shared_tmp / "store", "-q", "--no-notify", "--strategy", "ladder",
                            user=NOBODY, env=env)
    assert_refused(said, 2, "trials")
    record = RunStore(shared_tmp / "store").run(run_id).record()
    assert record.status == "failed" and "trials" in record.message


# ----------------------------------------------------------------------------- a second `mlci run`


def test_a_refused_second_run_leaves_the_running_runs_config_alone(tmp_path):
    """While one `mlci run` holds the run, another with a different budget is exit 9 and changes nothing."""
    import fcntl

    from mlci.orchestration.runs import prepare_run

    model = write_model(tmp_path / "user")
    store = RunStore(tmp_path / "store")
    run, config = prepare_run(model, store=store)
    before = run.record_path.read_bytes()
    with open(run.dir / ".lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with Untouched(tmp_path / "store", tmp_path / "user"):
            said = cli("run", model, "--home", tmp_path / "store", "--max-trials", "9", "--threshold", "0.2", "-q")
    assert_refused(said, 9, "in use")
    assert run.record_path.read_bytes() == before
    assert run.record().config.max_trials == config.max_trials == 2
