"""Golden config.xml of the six jobs and the view: jobs_golden/<scenario>/ (values.yaml, expected/) rendered, diffed.
Intended change: `MLCI_UPDATE_GOLDEN=1 pytest tests/integrations/test_jobs_golden.py` rewrites expected/; review it."""
from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest
import yaml

from mlci.integrations import jenkins

REPO = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).resolve().parent / "jobs_golden"
SCENARIOS = sorted(p.name for p in GOLDEN.iterdir() if p.is_dir())
UPDATE = os.environ.get("MLCI_UPDATE_GOLDEN") == "1"


def _values(scenario: Path) -> dict:
    path = scenario / "values.yaml"
    return (yaml.safe_load(path.read_text(encoding="utf-8")) or {}) if path.is_file() else {}


def _update(expected: Path, rendered: Path) -> None:
    expected.mkdir(exist_ok=True)
    for stale in expected.glob("*.xml"):
        stale.unlink()
    for path in rendered.glob("*.xml"):
        (expected / path.name).write_bytes(path.read_bytes())


def test_scenarios_are_present():
    assert {"default", "overrides"} <= set(SCENARIOS)


@pytest.mark.parametrize("name", SCENARIOS)
def test_rendered_xml_matches_the_golden_files(name, tmp_path):
    scenario = GOLDEN / name
    result = jenkins.render(tmp_path, jobs_dir=REPO / "jobs", values=_values(scenario))
    assert len(result.jobs) == 6 and len(result.views) == 1
    expected = scenario / "expected"
    if UPDATE:
        _update(expected, tmp_path)

    got = {p.name: p.read_text(encoding="utf-8") for p in tmp_path.glob("*.xml")}
    want = {p.name: p.read_text(encoding="utf-8") for p in expected.glob("*.xml")}
    if set(got) != set(want):
        pytest.fail(f"{name}: not rendered but expected: {sorted(set(want) - set(got))}; rendered but not expected: "
                    f"{sorted(set(got) - set(want))} (if intended: MLCI_UPDATE_GOLDEN=1, review, commit)", pytrace=False)
    diffs = ["".join(difflib.unified_diff(want[f].splitlines(True), got[f].splitlines(True),
                                          f"expected/{f}", f"rendered/{f}"))
             for f in sorted(want) if got[f] != want[f]]
    if diffs:
        pytest.fail(f"{name}: rendered XML differs from {expected.relative_to(REPO)} "
                    "(if intended: MLCI_UPDATE_GOLDEN=1, review, commit)\n" + "\n".join(diffs), pytrace=False)
