"""The one skip policy (tests/skips.py), checked in child pytest runs: under CI=true a missing SDK, linter, dev
extra or Docker engine fails; elsewhere (CI unset, empty, false, 0, yes) it skips with the reason.

This file needs no Docker SDK, so it runs (and guards the policy) on every machine.
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import NO_ENGINE

ROOT = Path(__file__).resolve().parents[1]

NEEDS_MISSING_THINGS = '''
    from skips import require_module, require_programs

    require_module("mlci_no_such_package_at_module_level", "dev", module_level=True)


    def test_never_runs():
        pass
'''

NEEDS_ONE_THING_EACH = '''
    from skips import require_module, require_programs


    def test_needs_a_dev_extra():
        require_module("mlci_no_such_package", "dev")


    def test_needs_a_linter():
        require_programs("mlci-no-such-linter", fix="install it with npm")
'''


def child_pytest(folder: Path, ci: str | None, *targets: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != "CI"}
    if ci is not None:
        env["CI"] = ci
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "tests"), str(ROOT / "src")])
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *targets],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture
def suite(tmp_path):
    (tmp_path / "test_each.py").write_text(textwrap.dedent(NEEDS_ONE_THING_EACH))
    (tmp_path / "test_module.py").write_text(textwrap.dedent(NEEDS_MISSING_THINGS))
    return tmp_path


@pytest.mark.parametrize("ci", ["true", "1"])
def test_under_ci_a_missing_package_or_program_fails(suite, ci):
    done = child_pytest(suite, ci, "test_each.py")
    assert done.returncode == 1 and "2 failed" in done.stdout, done.stdout
    assert ("CI=true but the Python package mlci_no_such_package is not installed (No module named "
            "'mlci_no_such_package'); install the extra: pip install -e '.[dev]'") in done.stdout
    assert "CI=true but mlci-no-such-linter not found on PATH; install it with npm" in done.stdout
    module = child_pytest(suite, ci, "test_module.py")
    assert module.returncode != 0 and "1 error" in module.stdout, module.stdout
    assert "CI=true but the Python package mlci_no_such_package_at_module_level is not installed" in module.stdout


@pytest.mark.parametrize("ci", [None, "false", "yes"])
def test_elsewhere_a_missing_package_or_program_skips_with_the_reason(suite, ci):
    done = child_pytest(suite, ci, "test_each.py", "test_module.py")
    assert done.returncode == 0 and "3 skipped" in done.stdout, done.stdout
    assert "the Python package mlci_no_such_package is not installed" in done.stdout
    assert "mlci-no-such-linter not found on PATH" in done.stdout
    assert "the Python package mlci_no_such_package_at_module_level is not installed" in done.stdout


@pytest.mark.parametrize("ci", ["true", "false"])
def test_the_docker_tests_fail_in_ci_and_skip_elsewhere_without_an_engine(ci):
    """The real Docker test file with no engine (and, where it is absent, no SDK) in a child pytest."""
    target = f"{ROOT / 'tests' / 'runners' / 'test_docker.py'}::test_run_sklearn_in_docker_end_to_end"
    env = {key: value for key, value in os.environ.items() if key != "CI"}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", target],
                          cwd=ROOT, env={**env, **NO_ENGINE, "CI": ci}, capture_output=True, text=True, timeout=300)
    why = ("no Docker engine answers" if importlib.util.find_spec("docker") else
           "the Python package docker is not installed")
    if ci == "true":
        assert done.returncode != 0 and "1 error" in done.stdout, done.stdout
        assert f"CI=true but {why}" in done.stdout
    else:
        assert done.returncode == 0 and "1 skipped" in done.stdout and why in done.stdout, done.stdout


def test_the_ci_entry_point_sets_ci_true_itself():
    """.ci/run must not depend on the CI service setting CI: the policy above reads exactly this value."""
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert "export CI=true" in lines and lines.index("export CI=true") < lines.index("make test")
