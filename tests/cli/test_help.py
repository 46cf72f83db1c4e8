"""`mlci --help`: the commands in pipeline order, the exit-code table once; `mlci history --run ID`."""
from __future__ import annotations

import re

from click.testing import CliRunner

from mlci.cli import main
from mlci.core.store import RunRecord, RunStore

PIPELINE_ORDER = ["run", "fetch", "detect", "launch", "train", "wait", "check", "tweak", "status", "notify", "monitor",
                  "report", "history", "runs", "dashboard", "worker", "daemon", "example", "images", "jenkins", "hook",
                  "watch"]


def invoke(*args: str, **kwargs):
    return CliRunner().invoke(main, list(args), prog_name="mlci", **kwargs)


def listed_commands(help_text: str) -> list[str]:
    section = help_text.split("Commands:", 1)[1]
    return re.findall(r"^  (\S+)", section.split("\n\n", 1)[0], flags=re.MULTILINE)


def test_help_lists_the_commands_in_pipeline_order():
    done = invoke("--help")
    assert done.exit_code == 0
    assert listed_commands(done.output) == PIPELINE_ORDER
    assert sorted(main.commands) == sorted(PIPELINE_ORDER)  # a new command must be placed in the order too


def test_exit_code_table_is_shown_once_by_the_group():
    top = invoke("--help").output
    assert "Exit codes:" in top and "130  interrupted" in top and "9  the run is locked" in top
    for command in (["check"], ["run"], ["history"], ["jenkins"], ["jenkins", "render"], ["hook"], ["watch"]):
        text = invoke(*command, "--help").output
        assert "130  interrupted" not in text and "the run is locked" not in text, command
    assert "Exit codes: see `mlci --help`." in invoke("check", "--help").output


def test_commands_with_their_own_exit_codes_keep_them():
    assert "4 unsupported" in invoke("detect", "--help").output
    assert "8 not delivered" in invoke("notify", "--help").output
    assert "5 a trial was closed as failed" in invoke("monitor", "--help").output


def test_history_takes_run_like_the_other_commands(tmp_path):
    home = tmp_path / "store"
    record = RunRecord(run_id="model-1", model_name="model", model_file="/x/model.py", source_dir="/x",
                       content_hash="abc")
    RunStore(home).open_run(record)
    done = invoke("history", "--run", "model-1", "--home", str(home))
    assert done.exit_code == 0, done.output
    assert "model-1" in done.output
    assert invoke("history", "--home", str(home), env={"RUN_ID": "model-1"}).exit_code == 0
    refused = invoke("history", "model-1", "--home", str(home))
    assert refused.exit_code == 2 and "Missing option '--run'" in refused.output
    refused = invoke("history", "model-1", "--run", "model-1", "--home", str(home))
    assert refused.exit_code == 2 and "unexpected extra argument" in refused.output
