"""Commands import only what they need (bench/startup.py times them; this checks what they load, not how fast)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import ROOT
from mlci.core.store import MetricsRecord, RunRecord, RunStore, write_json

PROBE = ("import runpy, sys; sys.argv = ['mlci', *sys.argv[1:]]\ntry:\n    runpy.run_module('mlci', run_name='__main__')\n"
         "except SystemExit:\n    pass\nprint('\\nMODULES ' + ' '.join(sorted(sys.modules)), file=sys.stderr)")
HEAVY = {"rich", "pydantic", "optuna", "docker", "jenkins", "jenkins_jobs", "numpy", "libcst", "sqlalchemy",
         "tensorflow", "sklearn", "matplotlib"}


def modules(*args: str, home=None) -> set[str]:
    """Every module a fresh `mlci ARGS` process has imported when it ends."""
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True,
                          env={**__import__("os").environ, **({"MLCI_HOME": str(home)} if home else {})})
    line = next(ln for ln in done.stderr.splitlines() if ln.startswith("MODULES "))
    return set(line.split()[1:])


def heavy_modules(*args: str, home=None) -> set[str]:
    return {name.split(".")[0] for name in modules(*args, home=home)} & HEAVY


@pytest.fixture
def run_id(home) -> str:
    run = RunStore(home).open_run(RunRecord(run_id="model-1", model_name="model", model_file="/x/model.py",
                                            source_dir="/x", content_hash="abc"))
    write_json(run.new_trial().metrics_path, MetricsRecord(trial=0, value=0.9, accuracy=0.9))
    return run.id


def test_help_imports_no_command_module_nor_heavy_library():
    assert heavy_modules("--help") == set()


def test_detect_status_and_check_import_pydantic_at_most(home, run_id):
    assert heavy_modules("detect", str(ROOT / "models/mnist_cnn/mnist_cnn.py")) <= {"pydantic"}
    assert heavy_modules("status", "--json", "--run", run_id, home=home) <= {"pydantic"}
    assert heavy_modules("check", "--run", run_id, home=home) <= {"pydantic"}


def test_status_json_imports_no_runner_and_no_trial_lifecycle(home, run_id):
    """`mlci status --json` (every Jenkins build) reads the oracle's verdict: starting, following or settling
    trials (runners, lifecycle, the pipeline, the monitor) or proposing them (the strategies) is none of its
    business."""
    loaded = modules("status", "--json", "--run", run_id, home=home)
    assert "mlci.orchestration.oracle" in loaded  # the probe sees what the command imported
    assert not {name for name in loaded if name.startswith(("mlci.runners", "mlci.orchestration.lifecycle",
                                                             "mlci.orchestration.pipeline",
                                                             "mlci.orchestration.monitor",
                                                             "mlci.tuning.strategies"))}
