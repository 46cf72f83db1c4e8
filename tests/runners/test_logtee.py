"""The trial log's cap (runners/logtee.py): a script printing without end cannot fill the disk."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from mlci.runners.logtee import CappedLog

SRC = Path(__file__).resolve().parents[2] / "src"


def test_a_log_past_its_cap_is_rotated_with_a_note_and_stays_bounded(tmp_path):
    log = tmp_path / "log.txt"
    script = "import sys\nfor i in range(20000): print(f'line {i:06d} ' + 'x' * 40)\nsys.exit(3)\n"
    done = subprocess.run([sys.executable, "-m", "mlci.runners.logtee", str(log), "--", sys.executable, "-c", script],
                          capture_output=True, env={**os.environ, "PYTHONPATH": str(SRC), "MLCI_LOG_MAX_BYTES": "65536"},
                          timeout=120)
    assert done.returncode == 3  # the command's status passes through
    assert done.stdout.count(b"\n") == 20000  # `docker logs` still sees everything
    rotated = tmp_path / "log.1.txt"
    assert log.stat().st_size <= 65536 and rotated.stat().st_size <= 65536
    text = log.read_text()
    assert text.startswith("mlci: log.txt reached 65536 bytes") and "log.1.txt" in text.splitlines()[0]
    assert text.rstrip().endswith("line 019999 " + "x" * 40)  # the newest output is kept
    assert rotated.read_text().startswith("mlci: log.txt reached")  # rotated more than once: oldest dropped


def test_the_cap_counts_what_an_earlier_attempt_wrote(tmp_path):
    """A restarted trial appends to the same log.txt: the cap holds across attempts."""
    path = tmp_path / "log.txt"
    path.write_bytes(b"a" * 5000 + b"\n")
    with CappedLog(path, limit=8192) as log:
        log.write(b"b" * 4000 + b"\n")
    assert path.stat().st_size < 8192 + 200
    assert (tmp_path / "log.1.txt").read_bytes().startswith(b"a" * 5000)


def test_lines_under_the_cap_are_written_as_they_come(tmp_path):
    path = tmp_path / "log.txt"
    with CappedLog(path, limit=8192) as log:
        for number in range(10):
            log.write(f"epoch {number}\n".encode())
    assert path.read_text().splitlines() == [f"epoch {n}" for n in range(10)]
    assert not (tmp_path / "log.1.txt").exists()


def test_a_log_another_process_appends_to_is_rotated_in_place_and_the_writer_goes_on(tmp_path):
    """Local and warm trials write log.txt themselves (O_APPEND): whoever watches them caps it."""
    from mlci.runners.logtee import cap_appended_log

    path = tmp_path / "log.txt"
    writer = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)  # as the trial's stdout is
    os.write(writer, b"old " * 3000)
    assert not cap_appended_log(path, limit=20000)  # under the cap: untouched
    os.write(writer, b"old " * 3000)
    assert cap_appended_log(path, limit=20000)
    os.write(writer, b"new line\n")
    os.close(writer)
    assert (tmp_path / "log.1.txt").read_bytes() == b"old " * 6000
    lines = path.read_text().splitlines()
    assert lines[0].startswith("mlci: log.txt passed 20000 bytes") and "log.1.txt" in lines[0]
    assert lines[1:] == ["new line"]  # the writer's next line lands after the note, not at its old offset


def test_mlci_run_keeps_a_local_trials_log_under_its_cap(tmp_path):
    """A model printing far past the cap: log.txt stays bounded, and the newest lines are the ones kept."""
    from conftest import KNN_SOURCE, mlci, write_model
    from mlci.core.store import RunStore

    chatty = KNN_SOURCE + """
    _build = build_model


    def build_model(hp):
        import time
        for i in range(12):
            print(f"chunk {i} " + "x" * 60000, flush=True)
            time.sleep(0.25)
        print("the last line", flush=True)
        return _build(hp)
"""
    model = write_model(tmp_path / "m", chatty, "chatty.py", 'threshold = 0.5\nmax_trials = 1\ndataset = "digits"\n'
                                                             'workers = "fresh"\n')
    home = tmp_path / "home"
    done = mlci("run", str(model), "--home", str(home), "-q", env={"MLCI_LOG_MAX_BYTES": "100000"})
    assert done.returncode == 0, done.stderr
    [run] = RunStore(home).runs()
    trial = run.trial(0)
    assert (trial.dir / "log.1.txt").exists()
    log, older = trial.log_path.read_text(), (trial.dir / "log.1.txt").read_text()
    assert "mlci: log.txt passed 100000 bytes" in log
    assert "the last line" in log + older and "chunk 0 " not in log + older  # the newest kept, the oldest dropped
    assert trial.log_path.stat().st_size < 12 * 60000 // 2  # bounded: far below all that was printed
