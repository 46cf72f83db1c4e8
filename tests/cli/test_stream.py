"""The trial's console as `mlci wait` / `mlci launch --wait` stream it: plain lines without a terminal, live."""
from __future__ import annotations

import threading
import time

import pytest

from mlci.cli.stream import LogFollower, plain_line


def test_a_progress_bar_is_reduced_to_its_final_state_without_escape_codes():
    bar = ("\x1b[1m 1/50\x1b[0m \x1b[32m━━\x1b[0m - ETA: 3s\r\x1b[1m50/50\x1b[0m \x1b[32m━━━━\x1b[0m"
           " - 1s 2ms/step - loss: 0.31\x08\x0842")
    assert plain_line(bar) == "50/50 ━━━━ - 1s 2ms/step - loss: 0.42"
    assert plain_line("epoch 1/3: val_accuracy=0.9178\r") == "epoch 1/3: val_accuracy=0.9178"
    assert plain_line("\x1b]8;;http://x\x07link\x1b]8;;\x07 done") == "link done"
    assert plain_line("\r\r") == ""


def wait_until(condition, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_lines_appear_while_the_log_grows_and_notices_come_in_order(tmp_path):
    log = tmp_path / "log.txt"
    seen: list[str] = []
    lock = threading.Lock()

    def echo(line: str) -> None:
        with lock:
            seen.append(line)

    with LogFollower(log, echo, poll=0.02) as follower:
        with open(log, "a", buffering=1) as handle:
            handle.write("epoch 1/2: val_accuracy=0.5000\n")
            # live: the first epoch is on the console before the second is written
            assert wait_until(lambda: seen == ["epoch 1/2: val_accuracy=0.5000"])
            handle.write("a user's print with no newline yet")
            time.sleep(0.1)
            assert seen == ["epoch 1/2: val_accuracy=0.5000"]  # half a line waits for its end
            handle.write(" ... ended\n\x1b[31mKilled\x1b[0m\n")
            handle.flush()
            follower.notice("trial 0 killed by SIGKILL; restarting it from epoch 1 [1/3]")
            handle.write("epoch 2/2: val_accuracy=0.7000")
    assert seen == ["epoch 1/2: val_accuracy=0.5000", "a user's print with no newline yet ... ended", "Killed",
                    "mlci: trial 0 killed by SIGKILL; restarting it from epoch 1 [1/3]",
                    "epoch 2/2: val_accuracy=0.7000"]  # the last, unfinished line comes at the end


def test_a_terminal_gets_the_lines_as_written(tmp_path):
    log = tmp_path / "log.txt"
    log.write_text("\x1b[1m10/10\x1b[0m\r\n")
    seen: list[str] = []
    with LogFollower(log, seen.append, raw=True, poll=0.02):
        pass
    assert seen == ["\x1b[1m10/10\x1b[0m"]


DIES_ONCE = '''
import os
import signal
from pathlib import Path

from sklearn.linear_model import SGDClassifier

HPARAMS = {"epochs": 3, "alpha": 0.0001}


def build_model(hp):
    marker = Path(os.environ["MLCI_TRIAL_DIR"]) / "died-once"
    if not marker.exists():
        marker.write_text("")
        print("first attempt: about to be killed", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    return SGDClassifier(alpha=hp["alpha"], random_state=0)
'''


@pytest.mark.slow
def test_mlci_wait_shows_the_trials_prints_its_restart_and_every_epoch_in_order(tmp_path):
    """Real mlci commands and a real trial process (scikit-learn, digits) that is SIGKILLed once."""
    from conftest import mlci

    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "sgd.py").write_text(DIES_ONCE)
    (tmp_path / "m" / "mlci.toml").write_text('dataset = "digits"\nrunner = "local"\nthreshold = 0.5\n'
                                              'max_trials = 1\nmax_restarts = 2\n')
    home = ["--home", str(tmp_path / "home")]
    fetched = mlci("fetch", str(tmp_path / "m"), "--model", "sgd.py", *home, check=True)
    run_id = next(line[7:] for line in fetched.stdout.splitlines() if line.startswith("RUN_ID="))
    mlci("launch", "--run", run_id, *home, check=True)
    waited = mlci("wait", "--run", run_id, *home)
    assert waited.returncode == 0, waited.stderr
    lines = waited.stdout.splitlines()
    first = lines.index("first attempt: about to be killed")
    # the wait process is not the trial's parent: it sees the process vanish and restarts it
    restart = next(i for i, line in enumerate(lines)
                   if line.startswith("mlci: trial 0 ") and "restarting it from the start [1/2]" in line)
    epochs = [i for i, line in enumerate(lines) if line.startswith("epoch ")]
    assert first < restart < epochs[0] and len(epochs) == 3, waited.stdout
    assert [lines[i][:10] for i in epochs] == ["epoch 1/3:", "epoch 2/3:", "epoch 3/3:"]
    assert "\x1b" not in waited.stdout
