"""The failure classes (orchestration/failures.py), in process on a real run store: which ends are restarted,
which fail the trial at once and with which one-line reason, which exception a crash leaves, and when a
running trial is stopped. `mlci run` and the monitor drive the same functions (test_containment, test_monitor)."""
from __future__ import annotations

import json
import os
import time
from datetime import datetime

import pytest

from mlci.core.config import Config
from mlci.core.store import CRASH_FILE, STOP_FILE, Kind, Restart, RunRecord, RunStore, TrialState
from mlci.orchestration.failures import DETERMINISTIC, classify, crash_signature, failure_reason, limit_reached
from mlci.runners.base import Status

EXIT_1 = Status("exited", "1", exit_code=1, reason="exit code 1")


@pytest.fixture
def run(tmp_path):
    return RunStore(tmp_path / "store").open_run(RunRecord(
        run_id="knn-1", model_name="knn", model_file=str(tmp_path / "knn.py"), source_dir=str(tmp_path),
        content_hash="c", kind=Kind(framework="sklearn", architecture="classical"), config=Config(dataset="digits")))


@pytest.fixture
def trial(run):
    return run.new_trial()


def traceback(exception_line: str, frames: int = 1) -> str:
    lines = ["Traceback (most recent call last):"]
    for n in range(frames):
        lines += [f'  File "/work/model.py", line {10 + n}, in fit', "    raise_it()"]
    return "\n".join(lines + [exception_line]) + "\n"


# ----------------------------------------------------------------------------- the runner's states


def test_a_kill_an_oom_kill_or_a_vanished_process_is_restarted_with_the_runners_reason(trial):
    killed = classify(trial, Status("killed", "1", exit_code=137, reason="killed by SIGKILL"))
    assert (killed.transient, killed.reason, killed.signature) == (True, "killed by SIGKILL", None)
    oom = classify(trial, Status("oom", "c", exit_code=137, reason="exit code 137"))
    assert (oom.transient, oom.reason) == (True, "OOM-killed")  # the state says more than the exit code
    assert classify(trial, Status("missing", "c")).reason == "missing"  # no reason: the state
    assert classify(trial, Status("missing", "c", reason="container gone")).reason == "container gone"
    # a crash record left by an earlier attempt changes nothing: a kill is never the code's fault
    (trial.dir / CRASH_FILE).write_text(json.dumps({"type": "PermissionError", "message": "no"}))
    assert classify(trial, Status("killed", "1", exit_code=137, reason="killed by SIGKILL")).transient


@pytest.mark.parametrize("state", ["killed", "oom", "missing"])
def test_a_death_after_a_restart_is_not_taken_for_the_previous_attempts_exception(trial, state):
    """The log keeps the first attempt's traceback; the host lost (or the kill) now is not "the same exception"."""
    trial.log_path.write_text(traceback("RuntimeError: the disk said no") + "resuming from epoch 2\n")
    restarts = [Restart(at="t0", reason="exit code 1", failure="RuntimeError: the disk said no")]
    failure = classify(trial, Status(state, "1", reason="lost"), restarts)
    assert (failure.transient, failure.signature) == (True, None)


def test_a_stop_by_mlci_or_an_exit_0_without_metrics_fails_the_trial_at_once(trial):
    stopped = classify(trial, Status("stopped", "1", reason="stopped: no progress for 5 min"))
    assert (stopped.transient, stopped.reason) == (False, "stopped: no progress for 5 min")
    assert failure_reason(trial, Status("stopped", "1")) == "stopped by mlci"
    (trial.dir / "error.txt").write_text("build_model raised ValueError\n")  # a stop is said as a stop
    assert failure_reason(trial, Status("stopped", "1", reason="stopped: past trial_minutes")) == (
        "stopped: past trial_minutes")
    clean = classify(trial, Status("exited", "1", exit_code=0, reason="exit code 0"))
    assert (clean.transient, clean.reason) == (False, "exited 0 without writing metrics.json")


def test_an_exit_without_a_diagnosis_or_an_exception_is_restarted_with_the_status(trial):
    failure = classify(trial, EXIT_1)
    assert (failure.transient, failure.reason, failure.signature) == (True, "exit code 1", None)
    assert classify(trial, Status("exited", "1", exit_code=3)).reason == "exited"
    trial.log_path.write_text("epoch 1\nSegmentation fault (core dumped)\n")  # no traceback: no signature
    assert classify(trial, Status("exited", "1", exit_code=139, reason="exit code 139")).signature is None


# ----------------------------------------------------------------------------- the exception a crash leaves


def test_the_harness_crash_record_names_the_exception(trial):
    assert crash_signature(trial) is None  # no record, no log
    (trial.dir / CRASH_FILE).write_text(json.dumps({"type": "ValueError", "message": "bad shape (3, 4)"}))
    assert crash_signature(trial) == "ValueError: bad shape (3, 4)"
    (trial.dir / CRASH_FILE).write_text(json.dumps({"type": "KeyboardInterrupt", "message": ""}))
    assert crash_signature(trial) == "KeyboardInterrupt"  # no dangling ": "
    (trial.dir / CRASH_FILE).write_text(json.dumps({"type": "OSError", "message": "disk full:  "}))
    assert crash_signature(trial) == "OSError: disk full"
    (trial.dir / CRASH_FILE).write_text(json.dumps({"type": "ValueError", "message": "no column named X"}))
    assert crash_signature(trial) == "ValueError: no column named X"  # only ": " and blanks are trimmed


@pytest.mark.parametrize("record", ['{"type": "ValueError"', '{"type": "ValueError"}', '["ValueError", "x"]', "\xff"])
def test_a_torn_or_odd_crash_record_falls_back_to_the_logs_traceback(trial, record):
    (trial.dir / CRASH_FILE).write_text(record, encoding="latin-1")
    assert crash_signature(trial) is None
    trial.log_path.write_text("epoch 1\n" + traceback("RuntimeError: from the log"))
    assert crash_signature(trial) == "RuntimeError: from the log"


def test_the_logs_latest_traceback_names_the_exception_shortened_to_one_line(trial):
    trial.log_path.write_text(traceback("ValueError: first attempt") + "resuming\n"
                              + traceback("torch.cuda.OutOfMemoryError:   CUDA   out\tof memory ", frames=3))
    assert crash_signature(trial) == "OutOfMemoryError: CUDA out of memory"  # the last one; the bare class name
    trial.log_path.write_text(traceback("mlci_models.errors.DataError: " + "x" * 500))
    assert crash_signature(trial) == "DataError: " + "x" * 300
    trial.log_path.write_text(traceback("KeyboardInterrupt"))
    assert crash_signature(trial) == "KeyboardInterrupt"
    trial.log_path.write_text(traceback("KeyError: X"))
    assert crash_signature(trial) == "KeyError: X"
    trial.log_path.write_bytes(traceback("ValueError: caf\xe9").encode("latin-1"))  # not UTF-8: never a crash
    assert crash_signature(trial) == "ValueError: caf\ufffd"


def test_a_traceback_at_the_logs_first_byte_or_with_a_blank_line_inside_is_read(trial):
    trial.log_path.write_text(traceback("ImportError: cannot import name 'x'"))
    assert crash_signature(trial) == "ImportError: cannot import name 'x'"
    trial.log_path.write_text('Traceback (most recent call last):\n  File "m.py", line 3, in <module>\n\n'
                              "NameError: name 'np' is not defined\n")  # a blank line printed by another thread
    assert crash_signature(trial) == "NameError: name 'np' is not defined"


def test_a_traceback_cut_short_or_followed_by_other_output_names_no_exception(trial):
    trial.log_path.write_text("epoch 1\nepoch 2\n")
    assert crash_signature(trial) is None
    trial.log_path.write_text('Traceback (most recent call last):\n  File "m.py", line 3, in <module>\n')
    assert crash_signature(trial) is None  # killed while Python printed it
    trial.log_path.write_text('Traceback (most recent call last):\n  File "m.py", line 3, in <module>\n'
                              "[notice] 2 of 3 epochs: ok\nValueError: later\n")
    assert crash_signature(trial) is None  # the first line at the margin is not an exception: no guess
    trial.log_path.write_text('Traceback (most recent call last):\n  File "m.py", line 3, in <module>\n'
                              '{\n  "resumed_from_epoch": 2\n}\n')  # killed mid-traceback; the next attempt's output
    assert crash_signature(trial) is None


def test_only_the_logs_last_64_kib_are_read(trial):
    window = 65536
    tail = traceback("ValueError: inside the window")
    trial.log_path.write_text("x" * 100_000 + "\n" + tail + "." * (window - len(tail)))
    assert crash_signature(trial) == "ValueError: inside the window"  # it starts at the window's first byte
    trial.log_path.write_text("x" * 100_000 + "\n" + tail + "." * (window - len(tail) + 1))
    assert crash_signature(trial) is None  # one byte earlier: "Traceback" is cut, nothing is guessed


# ----------------------------------------------------------------------------- deterministic or restarted


@pytest.mark.parametrize("kind", sorted(DETERMINISTIC))
def test_an_exception_that_the_same_code_raises_every_time_is_not_restarted(trial, kind):
    (trial.dir / CRASH_FILE).write_text(json.dumps({"type": kind, "message": "bad: at line 3"}))
    failure = classify(trial, EXIT_1)
    assert (failure.transient, failure.signature) == (False, f"{kind}: bad: at line 3")
    assert failure.reason == f"{kind}: bad: at line 3 ({kind} is deterministic: not restarted)"


def test_the_deterministic_exceptions_are_the_ones_documented():
    assert DETERMINISTIC == {"SyntaxError", "IndentationError", "TabError", "ImportError", "ModuleNotFoundError",
                             "PermissionError", "NameError", "UnboundLocalError"}


def test_a_permission_error_from_the_log_whose_message_has_colons_is_deterministic(trial):
    trial.log_path.write_text(traceback("PermissionError: [Errno 13] Permission denied: '/data/x'"))
    failure = classify(trial, EXIT_1)
    assert not failure.transient and failure.reason.endswith("(PermissionError is deterministic: not restarted)")


def test_another_exception_is_restarted_once_then_fails_when_it_comes_again(trial):
    trial.log_path.write_text(traceback("RuntimeError: the disk said no"))
    first = classify(trial, EXIT_1)
    assert (first.transient, first.reason, first.signature) == (
        True, "exit code 1 (RuntimeError: the disk said no)", "RuntimeError: the disk said no")
    assert classify(trial, Status("exited", "1", exit_code=1)).reason == "exited (RuntimeError: the disk said no)"
    earlier = Restart(at="t0", reason="exit code 1", failure="ValueError: other")
    same = Restart(at="t1", reason="exit code 1", failure="RuntimeError: the disk said no")
    again = classify(trial, EXIT_1, [earlier, same])
    assert (again.transient, again.signature) == (False, "RuntimeError: the disk said no")
    assert again.reason == "the same exception twice: RuntimeError: the disk said no (not restarted again)"
    assert classify(trial, EXIT_1, [same, earlier]).transient  # the latest attempt ended differently: one more try
    assert classify(trial, EXIT_1, [Restart(at="t0", reason="killed by SIGKILL")]).transient


def test_the_harness_diagnosis_is_final_only_with_its_exit_codes(trial):
    (trial.dir / "error.txt").write_text("build_model raised ValueError: no such layer\n")
    trial.log_path.write_text(traceback("RuntimeError: would be restarted"))
    diagnosed = classify(trial, Status("exited", "1", exit_code=4, reason="exit code 4"))
    assert (diagnosed.transient, diagnosed.reason) == (False, "build_model raised ValueError: no such layer")
    assert classify(trial, EXIT_1).transient  # exit 1 is a bug's exit code, not a diagnosis


# ----------------------------------------------------------------------------- a running trial that must stop


def at(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def test_a_trial_without_progress_for_stall_minutes_is_stopped(trial):
    state = TrialState(trial=0, launched_at=1_000.0)
    config = Config(dataset="digits", stall_minutes=0.5)
    assert limit_reached(trial.run, trial, state, config, now=1_030.0) is None  # exactly the limit: not past it
    assert limit_reached(trial.run, trial, state, config, now=1_045.0) == (
        "stopped: no progress for 45s (no new epoch or log line; stall_minutes = 0.5)")
    assert limit_reached(trial.run, trial, state, config, now=1_060.0).startswith("stopped: no progress for 1.0 min ")
    assert limit_reached(trial.run, trial, TrialState(trial=0), config, now=60.0).startswith(
        "stopped: no progress for 1.0 min ")  # never launched: no progress since the epoch of time
    assert limit_reached(trial.run, trial, state, Config(dataset="digits", stall_minutes=None), now=9e9) is None
    launched_an_hour_ago = TrialState(trial=0, launched_at=time.time() - 3600)
    assert limit_reached(trial.run, trial, launched_an_hour_ago, config).startswith(  # now: the clock
        "stopped: no progress for 60.0 min ")


def test_a_log_line_or_an_epoch_checkpoint_is_progress(trial):
    state = TrialState(trial=0, launched_at=1_000.0)
    config = Config(dataset="digits", stall_minutes=1)
    trial.log_path.write_text("epoch 1\n")
    os.utime(trial.log_path, (1_050.0, 1_050.0))
    assert limit_reached(trial.run, trial, state, config, now=1_100.0) is None
    trial.checkpoints.mkdir()
    for name, when in (("history.jsonl", 1_080.0), ("model.keras", 1_500.0)):
        (trial.checkpoints / name).write_text("{}\n")
        os.utime(trial.checkpoints / name, (when, when))
    assert limit_reached(trial.run, trial, state, config, now=1_130.0) is None  # the epoch at 1080
    assert limit_reached(trial.run, trial, state, config, now=1_141.0).startswith(
        "stopped: no progress for 1.0 min")  # a checkpoint file that is no epoch record does not count


def test_a_trial_past_trial_minutes_since_its_first_start_is_stopped(trial):
    state = TrialState(trial=0, started_at="2026-01-01T00:00:00+00:00", launched_at=at("2026-01-01T00:09:00+00:00"))
    config = Config(dataset="digits", stall_minutes=None, trial_minutes=10)
    assert limit_reached(trial.run, trial, state, config, now=at("2026-01-01T00:10:00+00:00")) is None
    assert limit_reached(trial.run, trial, state, config, now=at("2026-01-01T00:10:01+00:00")) == (
        "stopped: the trial ran 10.0 min, past trial_minutes = 10")
    assert limit_reached(trial.run, trial, TrialState(trial=0), config, now=9e9) is None  # not started yet
    no_limit = Config(dataset="digits", stall_minutes=None)
    assert limit_reached(trial.run, trial, state, no_limit, now=at("2027-01-01T00:00:00+00:00")) is None


def test_at_max_minutes_the_trial_is_asked_to_stop_then_stopped_if_it_does_not(trial):
    config = Config(dataset="digits", stall_minutes=None, max_minutes=2, monitor={"heartbeat_timeout": 60})
    state = TrialState(trial=0, launched_at=0.0)
    deadline = at(trial.run.record().created_at) + 120
    request = trial.dir / STOP_FILE
    assert limit_reached(trial.run, trial, state, config, now=deadline - 1) is None and not request.exists()
    assert limit_reached(trial.run, trial, state, config, now=deadline) is None  # asked, after its epoch
    assert request.read_text() == "max_minutes = 2 reached\n"
    asked = float(int(deadline) + 1)
    os.utime(request, (asked, asked))
    assert limit_reached(trial.run, trial, state, config, now=asked + 60) is None  # it has heartbeat_timeout
    assert limit_reached(trial.run, trial, state, config, now=asked + 61) == (
        "stopped: the run's max_minutes (2) ran out and the trial did not end within 60s of being asked to")


# ----------------------------------------------------------------------------- the one-line reason


@pytest.mark.parametrize("code", [2, 4, 5, 6])
def test_an_exit_the_harness_diagnosed_in_error_txt_is_final_and_its_line_is_the_reason(trial, code):
    exited = Status("exited", "1", exit_code=code, reason=f"exit code {code}")
    assert classify(trial, exited).transient  # no error.txt: the harness did not diagnose it
    (trial.dir / "error.txt").write_text("  build_model raised ValueError: no such layer\n")
    assert not classify(trial, exited).transient and failure_reason(trial, exited) == (
        "build_model raised ValueError: no such layer")
    assert classify(trial, Status("exited", "1", exit_code=137)).transient  # not a diagnosed exit code
    (trial.dir / "error.txt").write_bytes("build_model raised ValueError: café ".encode() + b"\xff\n")
    assert failure_reason(trial, exited) == "build_model raised ValueError: café \ufffd"  # bad bytes never crash it


def test_the_failure_reason_without_a_diagnosis_is_the_status_and_the_logs_last_lines(trial):
    killed = Status("killed", "1", exit_code=137, reason="killed by SIGKILL")
    assert failure_reason(trial, killed) == "killed by SIGKILL"  # no log yet
    assert failure_reason(trial, Status("missing", "1")) == "missing"  # no reason: the state
    (trial.dir / "error.txt").write_text("   \n")  # empty: no diagnosis
    trial.log_path.write_text("one\n\ntwo\nthree\n  four  \n")
    assert failure_reason(trial, killed) == "killed by SIGKILL; last log lines: two | three | four"
    trial.log_path.write_bytes(b"x" * 1000 + b"\n\xff")
    assert failure_reason(trial, killed) == "killed by SIGKILL; last log lines: " + "x" * 396 + " | \ufffd"
