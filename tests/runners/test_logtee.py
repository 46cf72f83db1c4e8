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
