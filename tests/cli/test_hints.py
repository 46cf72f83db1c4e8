"""Every `mlci ...` command quoted in mlci's own strings (hints, fixes, docs) names options that exist.

A hint that sends the user to `mlci launch --trial N` when launch has no --trial is a dead end.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import click
import pytest

from mlci.cli import main
from mlci.core.errors import BusyError, MetricsError
from mlci.core.store import HparamsRecord, RunRecord, RunStore, TrialState

SRC = Path(__file__).resolve().parents[2] / "src" / "mlci"
QUOTED = re.compile(r"`mlci ([^`]*)`")


def string_texts(tree: ast.AST):
    """Every string literal, f-strings with each {…} replaced by a placeholder word."""
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            yield "".join(part.value if isinstance(part, ast.Constant) else " X " for part in node.values)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.value


def quoted_commands() -> list[tuple[str, str]]:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        for text in string_texts(ast.parse(path.read_text(encoding="utf-8"))):
            found += [(f"{path.relative_to(SRC)}", match) for match in QUOTED.findall(text)]
    return found


def missing_options(command_line: str) -> list[str]:
    command, ctx, words = main, click.Context(main, info_name="mlci"), command_line.split()
    while words and isinstance(command, click.Group) and words[0] in command.commands:
        command = command.commands[words.pop(0)]
        ctx = click.Context(command, parent=ctx)
    known = {"--help"} | {name for param in command.params for name in param.opts + param.secondary_opts}
    return [word for word in words if word.startswith("--") and word.split("=")[0] not in known]


def test_the_scan_finds_the_quoted_commands():
    found = {line for _, line in quoted_commands()}
    assert any(line.startswith("status --run") for line in found) and len(found) > 10
    assert missing_options("launch --run X --trial 3") == ["--trial"]  # the scan would catch the old hint


@pytest.mark.parametrize("where, line", quoted_commands())
def test_quoted_commands_name_existing_options(where, line):
    assert not missing_options(line), f"{where}: `mlci {line}` names options the command does not have"


def make_run(home):
    return RunStore(home).open_run(RunRecord(run_id="model-1", model_name="model", model_file="/x/model.py",
                                             source_dir="/x", content_hash="abc"))


def test_corrupt_metrics_hint_names_commands_that_retrain(tmp_path):
    from mlci.orchestration.oracle import RunOracle

    run = make_run(tmp_path)
    trial = run.new_trial()
    trial.write_hparams(HparamsRecord(trial=0, hparams={}))
    trial.write_state(TrialState(trial=0, status="succeeded"))
    trial.metrics_path.write_text("{")
    with pytest.raises(MetricsError) as info:
        trial.metrics()
    message = info.value.one_line()
    assert "`mlci launch --run model-1`" in message and "`mlci wait --run model-1 --trial 0`" in message
    assert "launch --run model-1 --trial" not in message
    assert RunOracle(run).open_trials() == []  # launch would not retrain it as it is ...
    trial.metrics_path.unlink()  # ... but does once the hint is followed
    trial.state_path.unlink()
    assert [t.number for t in RunOracle(run).open_trials()] == [0]


def test_busy_run_hint_names_no_missing_option(tmp_path):
    run = make_run(tmp_path)
    with run.lock():
        with pytest.raises(BusyError) as info:
            with run.lock():
                pass
    message = info.value.one_line()
    assert "--wait" not in message and "wait for the other mlci process to finish" in message
