"""A Jenkins build's result and description (`mlci jenkins result`): the run oracle's verdict, mapped to
0 SUCCESS, 3 UNSTABLE (the jobs' unstable-return), 5 FAILURE; and the links a notification carries."""
from __future__ import annotations

from click.testing import CliRunner

from mlci.cli import main
from mlci.core.errors import RunnerError
from mlci.core.states import DoneReason
from mlci.core.store import RunRecord, RunStore
from mlci.integrations.message import jenkins_links
from mlci.orchestration.oracle import Action, RunOracle, Step


def result_of(home, *args):
    return CliRunner().invoke(main, ["jenkins", "result", "--run", "model-1", "--home", str(home), *args])


def test_the_build_result_is_the_oracles_verdict(tmp_path):
    run = RunStore(tmp_path).open_run(RunRecord(run_id="model-1", model_name="model", model_file="/x/model.py",
                                                source_dir="/x", content_hash="abc"))
    going = result_of(tmp_path)
    assert going.exit_code == 0
    assert going.stdout == "mlci build: no trial measured yet (accuracy threshold 0.8)\n"
    assert "build result SUCCESS (exit 0)" in going.stderr

    RunOracle(run).finish(Step(Action.DONE, reason=DoneReason.BUDGET, message="max_trials (2) reached"))
    spent = result_of(tmp_path)
    assert spent.exit_code == 3  # the jobs' unstable-return
    assert spent.stdout == ("mlci build: no trial measured yet (accuracy threshold 0.8) "
                            "(budget spent: max_trials (2) reached)\n")
    assert "build result UNSTABLE (exit 3)" in spent.stderr

    RunOracle(run).fail(RunnerError("no Docker engine answers", hint="start Docker"))
    failed = result_of(tmp_path)
    assert failed.exit_code == 5
    assert failed.stdout.startswith("mlci build: no trial measured yet (accuracy threshold 0.8) (run failed: "
                                    "no Docker engine answers; start Docker)")


def test_an_unknown_trial_is_one_line_naming_the_trials(tmp_path):
    RunStore(tmp_path).open_run(RunRecord(run_id="model-1", model_name="model", model_file="/x/model.py",
                                          source_dir="/x", content_hash="abc"))
    result = result_of(tmp_path, "--trial", "4")
    assert result.exit_code == 2
    assert result.stderr == "mlci: error: run model-1 has no trial 4; its trials are none yet\n"


def test_notifications_link_the_build_and_its_report_only_under_jenkins():
    assert jenkins_links({}) == {}
    assert jenkins_links({"BUILD_URL": "file:///etc/passwd"}) == {}  # only a web address becomes a link
    assert jenkins_links({"BUILD_URL": "https://ci.example.com/job/mlci-5-notify/7"}) == {
        "build_url": "https://ci.example.com/job/mlci-5-notify/7/",
        "report_url": "https://ci.example.com/job/mlci-5-notify/7/report/"}
