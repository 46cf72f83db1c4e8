"""Jenkins integration: the six jobs and the view rendered by Jenkins Job Builder (asserted on the
XML, since JJB ignores unknown keys), deploy/trigger/status against a stand-in server, job 5's decision."""
from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from jenkins_standin import logs_of, model_repo, running
from skips import require_programs
from mlci.integrations import jenkins
from mlci.cli import main
from mlci.core.errors import UsageError
from mlci.core.store import RunStore

REPO = Path(__file__).resolve().parents[2]
JOBS = ["mlci-1-fetch", "mlci-2-launch", "mlci-3-train", "mlci-4-check", "mlci-5-notify", "mlci-6-monitor"]
SCRIPTS = dict(zip(JOBS, ["job1_fetch.sh", "job2_launch.sh", "job3_train.sh", "job4_check.sh",
                          "job5_notify.sh", "job6_monitor.sh"]))
PT = "hudson.plugins.parameterizedtrigger."


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict[str, ET.Element]:
    out = tmp_path_factory.mktemp("xml")
    result = jenkins.render(out, values={"git-url": "https://git.example.com/team/models.git", "branch": "dev",
                                         "credentials-id": "git-ssh", "agent-label": "gpu && docker",
                                         "mlci-home": "/srv/mlci", "threshold": "0.9"})
    return {name: ET.parse(path).getroot() for name, path in {**result.jobs, **result.views}.items()}


def triggers_of(root: ET.Element) -> list[dict]:
    """Each parameterized-trigger config: downstream projects, condition, parameter sources."""
    found = []
    for config in root.iter(PT + "BuildTriggerConfig"):
        files = config.find(f"configs/{PT}FileBuildParameters")
        found.append({"projects": config.findtext("projects").split(","),
                      "condition": config.findtext("condition"),
                      "current": config.find(f"configs/{PT}CurrentBuildParameters") is not None,
                      "file": files.findtext("propertiesFile") if files is not None else None,
                      "fail_on_missing": files.findtext("failTriggerOnMissing") if files is not None else None})
    return found


def test_jenkins_jobs_cli_renders_six_jobs_and_the_view(tmp_path):
    out = tmp_path / "out"
    cli = Path(sys.executable).parent / "jenkins-jobs"
    done = subprocess.run([str(cli), "test", str(REPO / "jobs"), "-o", str(out)],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == sorted(JOBS + ["mlci-pipeline"])
    view = ET.parse(out / "mlci-pipeline").getroot()
    assert view.tag == "au.com.centrumsystems.hudson.plugin.buildpipeline.BuildPipelineView"


def test_each_job_runs_its_script_verbatim(rendered):
    for job, script in SCRIPTS.items():
        commands = [e.findtext("command") for e in rendered[job].iter("hudson.tasks.Shell")]
        assert commands == [(REPO / "scripts" / script).read_text()], job


def test_scripts_are_thin_bash_with_strict_mode():
    for script in SCRIPTS.values():
        path = REPO / "scripts" / script
        lines = path.read_text().splitlines()
        assert lines[0] == "#!/usr/bin/env bash"
        assert "set -euo pipefail" in lines
        assert any(line.lstrip().startswith("mlci ") for line in lines), script
        assert subprocess.run(["bash", "-n", str(path)]).returncode == 0


def test_chain_one_to_five_passes_run_parameters_down(rendered):
    # 3 -> 4 and 4 -> 5 also when UNSTABLE: a spent budget is still checked and announced
    chain = [(JOBS[0], JOBS[1], "mlci.properties", "SUCCESS"), (JOBS[1], JOBS[2], "mlci.properties", "SUCCESS"),
             (JOBS[2], JOBS[3], None, "UNSTABLE_OR_BETTER"), (JOBS[3], JOBS[4], None, "UNSTABLE_OR_BETTER")]
    for upstream, downstream, properties, condition in chain:
        on_success = [t for t in triggers_of(rendered[upstream]) if t["condition"] == condition]
        assert [t["projects"] for t in on_success] == [[downstream]], upstream
        assert on_success[0]["current"] is True
        assert on_success[0]["file"] == properties


def test_a_spent_budget_is_unstable_through_each_shell_steps_unstable_return(rendered):
    """Exit 3 (EXIT_BELOW_THRESHOLD: budget spent below the threshold) is the jobs' unstable-return."""
    from mlci.core.errors import EXIT_BELOW_THRESHOLD

    for job in JOBS[1:]:
        (step,) = rendered[job].iter("hudson.tasks.Shell")
        assert step.findtext("unstableReturn") == str(EXIT_BELOW_THRESHOLD), job
        assert "mlci jenkins result --run" in step.findtext("command"), job
    assert rendered[JOBS[0]].find(".//hudson.tasks.Shell/unstableReturn") is None  # fetch has no verdict yet


def test_each_build_describes_its_trial_metric_and_threshold(rendered):
    setter = "publishers/hudson.plugins.descriptionsetter.DescriptionSetterPublisher"
    assert rendered[JOBS[0]].findtext(f"{setter}/regexp") == "^RUN_ID=(.*)$"
    assert rendered[JOBS[0]].findtext(f"{setter}/description") == r"run \1"
    for job in JOBS[1:]:
        assert rendered[job].findtext(f"{setter}/regexp") == "^mlci build: (.*)$", job
        assert rendered[job].findtext(f"{setter}/regexpForFailed") == "^mlci build: (.*)$", job
        assert rendered[job].findtext(f"{setter}/description") == r"\1", job


def test_job_five_publishes_the_report_archives_the_model_and_plots_the_trend(rendered):
    publishers = rendered["mlci-5-notify"].find("publishers")
    target = publishers.find("htmlpublisher.HtmlPublisher/reportTargets/htmlpublisher.HtmlPublisherTarget")
    assert (target.findtext("reportName"), target.findtext("reportDir"), target.findtext("reportFiles")) == (
        "report", "mlci-results", "report.html")
    assert target.findtext("keepAll") == "true" and target.findtext("allowMissing") == "true"
    archive = publishers.find("hudson.tasks.ArtifactArchiver")
    assert "mlci-results/best/**" in archive.findtext("artifacts") and archive.findtext("fingerprint") == "true"
    series = publishers.find(".//hudson.plugins.plot.PropertiesSeries")
    assert series.findtext("file") == "mlci-results/trend.properties" and series.findtext("fileType") == "properties"
    plot = publishers.find(".//hudson.plugins.plot.Plot")
    assert plot.findtext("csvFileName") == "mlci-best-metric.csv" and plot.findtext("keepRecords") == "true"
    # the description is set before email-ext reads the build
    tags = [child.tag for child in publishers]
    assert tags.index("hudson.plugins.descriptionsetter.DescriptionSetterPublisher") < tags.index(
        "hudson.plugins.emailext.ExtendedEmailPublisher")


def test_job_five_loops_back_to_launch_only_when_it_writes_the_retrain_file(rendered):
    (loop,) = triggers_of(rendered["mlci-5-notify"])
    assert loop == {"projects": ["mlci-2-launch"], "condition": "SUCCESS", "current": True,
                    "file": "mlci-retrain.properties", "fail_on_missing": "true"}
    assert "mlci-retrain.properties" in (REPO / "scripts" / "job5_notify.sh").read_text()


def test_job_six_runs_on_a_timer_and_on_job_three_failing(rendered):
    assert rendered["mlci-6-monitor"].findtext("triggers/hudson.triggers.TimerTrigger/spec") == "H/10 * * * *"
    failed = [t for t in triggers_of(rendered["mlci-3-train"]) if t["condition"] == "FAILED"]
    assert [t["projects"] for t in failed] == [["mlci-6-monitor"]]
    assert failed[0]["current"] is True
    assert triggers_of(rendered["mlci-6-monitor"]) == []


def test_job_one_checks_out_git_and_triggers_on_push_and_polling(rendered):
    fetch = rendered["mlci-1-fetch"]
    scm = fetch.find("scm")
    assert scm.get("class") == "hudson.plugins.git.GitSCM"
    remote = scm.find("userRemoteConfigs/hudson.plugins.git.UserRemoteConfig")
    assert remote.findtext("url") == "https://git.example.com/team/models.git"
    assert remote.findtext("credentialsId") == "git-ssh"
    assert scm.findtext("branches/hudson.plugins.git.BranchSpec/name") == "dev"
    assert fetch.find("triggers/com.cloudbees.jenkins.GitHubPushTrigger") is not None
    assert fetch.findtext("triggers/hudson.triggers.SCMTrigger/spec") == "H/5 * * * *"
    assert fetch.findtext("blockBuildWhenDownstreamBuilding") == "true"


def test_no_job_builds_concurrently_and_all_share_label_and_parameters(rendered):
    for job in JOBS:
        root = rendered[job]
        assert root.findtext("concurrentBuild") == "false", job
        assert root.findtext("assignedNode") == "gpu && docker", job
        params = {p.findtext("name"): p.findtext("defaultValue") or ""
                  for p in root.iter("hudson.model.StringParameterDefinition")}
        assert params == {"RUN_ID": "", "COMMIT": "", "TRIAL": "", "MODEL": "", "MLCI_HOME": "/srv/mlci",
                          "THRESHOLD": "0.9"}, job


def test_job_five_mails_with_email_ext_unless_it_retrains(rendered):
    mail = rendered["mlci-5-notify"].find("publishers/hudson.plugins.emailext.ExtendedEmailPublisher")
    assert mail is not None
    assert mail.findtext("recipientList") == "$DEFAULT_RECIPIENTS"  # Jenkins' global default list
    assert {t.tag.rsplit(".", 1)[1] for t in mail.find("configuredTriggers")} == {
        "SuccessTrigger", "UnstableTrigger", "FailureTrigger"}
    # ${FILE,...} is an email-ext token: JJB must not have eaten its braces; mlci's own HTML, report.png attached
    assert mail.findtext("defaultContent") == '${FILE,path="mlci-results/notification.html"}'
    assert mail.findtext("defaultSubject") == '${FILE,path="mlci-results/subject.txt"}'
    assert mail.findtext("contentType") == "text/html"
    assert mail.findtext("attachmentsPattern") == "mlci-results/report.png"
    assert "mlci-retrain.properties" in mail.findtext("presendScript")
    command = rendered["mlci-5-notify"].findtext(".//hudson.tasks.Shell/command")
    assert "mlci notify" in command and '--publish "${WORKSPACE}/mlci-results"' in command


def test_the_default_agent_label_asks_for_mlci_and_docker(tmp_path):
    result = jenkins.render(tmp_path)
    for job in JOBS:
        assert ET.parse(result.jobs[job]).getroot().findtext("assignedNode") == "mlci && docker", job


def test_pipeline_view_starts_with_fetch(rendered):
    view = rendered["mlci-pipeline"]
    assert view.tag == "au.com.centrumsystems.hudson.plugin.buildpipeline.BuildPipelineView"
    assert view.findtext("gridBuilder/firstJob") == "mlci-1-fetch"
    assert view.findtext("consoleOutputLinkStyle") == "New Window"
    assert view.findtext("startsWithParameters") == "true"
    assert view.findtext("showPipelineParameters") == "true"


def test_render_cli_writes_xml(tmp_path):
    result = CliRunner().invoke(main, ["jenkins", "render", "--out", str(tmp_path), "--branch", "release",
                                       "--set", "poll-schedule=H/2 * * * *"])
    assert result.exit_code == 0, result.output
    fetch = ET.parse(tmp_path / "mlci-1-fetch.xml").getroot()
    assert fetch.findtext("scm/branches/hudson.plugins.git.BranchSpec/name") == "release"
    assert fetch.findtext("triggers/hudson.triggers.SCMTrigger/spec") == "H/2 * * * *"


def test_render_rejects_an_unknown_parameter_naming_the_allowed_ones(tmp_path):
    result = CliRunner().invoke(main, ["jenkins", "render", "--out", str(tmp_path), "--set", "brnach=dev"])
    assert result.exit_code == 2
    assert "project.yaml: unknown parameter 'brnach'; allowed: name, git-url, branch" in result.output


def test_render_rejects_set_without_equals(tmp_path):
    result = CliRunner().invoke(main, ["jenkins", "render", "--out", str(tmp_path), "--set", "branch"])
    assert result.exit_code == 2
    assert "--set 'branch': expected KEY=VALUE" in result.output


def test_render_names_a_folder_without_project_yaml(tmp_path):
    result = CliRunner().invoke(main, ["jenkins", "render", "--jobs", str(tmp_path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert f"{tmp_path}: no project.yaml in this folder; pass the jobs/ folder" in result.output


def test_render_reports_a_template_error_in_one_line(tmp_path):
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    for name in ("defaults.yaml", "project.yaml"):
        (jobs / name).write_text((REPO / "jobs" / name).read_text())
    (jobs / "templates.yaml").write_text("- job-template:\n    name: '{name}-1-fetch'\n"
                                         "    builders:\n      - shell: 'echo {undefined-parameter}'\n")
    result = CliRunner().invoke(main, ["jenkins", "render", "--jobs", str(jobs), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "Jenkins Job Builder cannot render the jobs" in result.output
    assert "undefined-parameter" in result.output


# ----------------------------------------------------------------------------- stand-in server


@pytest.fixture
def jenkins_env(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # JJB's job cache
    with running() as server:
        monkeypatch.setenv("JENKINS_URL", server.url)
        monkeypatch.setenv("JENKINS_USER", "ci-bot")
        monkeypatch.setenv("JENKINS_API_TOKEN", "11aa22bb33cc")
        yield server


def test_deploy_creates_then_updates_jobs_and_view(jenkins_env):
    """The HTTP server stands in for Jenkins (it cannot be downloaded here); it records the REST calls."""
    server = jenkins_env
    result = CliRunner().invoke(main, ["jenkins", "deploy", "--git-url", "https://git.example.com/m.git"])
    assert result.exit_code == 0, result.output
    assert sorted(server.jobs) == JOBS and list(server.views) == ["mlci-pipeline"]
    created = [r.query["name"][0] for r in server.calls("POST", "/createItem")]
    assert sorted(created) == JOBS
    assert b"https://git.example.com/m.git" in server.jobs["mlci-1-fetch"]
    assert b"<firstJob>mlci-1-fetch</firstJob>" in server.views["mlci-pipeline"]
    assert {r.user for r in server.requests} == {"ci-bot:11aa22bb33cc"}
    assert "11aa22bb33cc" not in result.output

    before = len(server.calls("POST", "/createItem"))
    again = CliRunner().invoke(main, ["jenkins", "deploy", "--branch", "release"])
    assert again.exit_code == 0, again.output
    assert len(server.calls("POST", "/createItem")) == before  # updated in place, not created twice
    reconfigured = {r.path for r in server.calls("POST", "/job/")}
    assert reconfigured == {f"/job/{job}/config.xml" for job in JOBS}
    assert b"<name>release</name>" in server.jobs["mlci-1-fetch"]
    assert server.calls("POST", "/view/mlci-pipeline/config.xml")


def test_deploy_names_each_missing_plugin_and_creates_nothing(jenkins_env):
    """The HTTP server stands in for Jenkins (it cannot be downloaded here); it answers
    pluginManager/api/json?depth=1 as Jenkins 2.x does, here without two plugins and with one disabled."""
    server = jenkins_env
    del server.plugins["htmlpublisher"], server.plugins["plot"]
    server.plugins["email-ext"] = False
    result = CliRunner().invoke(main, ["jenkins", "deploy"])
    assert result.exit_code == 2, result.output
    lines = result.output.splitlines()
    assert lines[:3] == [
        f"mlci: plugin 'email-ext' (Email Extension: job 5's mail) is installed but disabled on {server.url}",
        f"mlci: missing plugin 'htmlpublisher' (HTML Publisher: report.html on the build page) on {server.url}",
        f"mlci: missing plugin 'plot' (Plot: the best metric's trend across builds) on {server.url}"]
    assert lines[3] == (f"mlci: error: {server.url}: 3 required plugin(s) missing; nothing was deployed; install "
                        "them (Manage Jenkins > Plugins > Available plugins), restart Jenkins, then run `mlci "
                        "jenkins deploy` again; docs/jenkins-10-minutes.md lists them")
    assert server.jobs == {} and server.views == {} and not server.calls("POST")
    (read,) = server.calls("GET", "/pluginManager/")
    assert read.path == "/pluginManager/api/json" and read.query == {"depth": ["1"]}


def test_the_stand_in_knows_the_plugins_mlci_requires():
    from jenkins_standin import REQUIRED_PLUGINS

    assert set(REQUIRED_PLUGINS) == set(jenkins.REQUIRED_PLUGINS)


def test_trigger_and_status(jenkins_env):
    """The HTTP server stands in for Jenkins (it cannot be downloaded here); it records the REST calls."""
    server = jenkins_env
    assert CliRunner().invoke(main, ["jenkins", "deploy"]).exit_code == 0
    result = CliRunner().invoke(main, ["jenkins", "trigger", "--param", "MODEL=models/cnn.py"])
    assert result.exit_code == 0, result.output
    assert "QUEUE_ID=1" in result.output
    assert server.queue == [("mlci-1-fetch", {"MODEL": "models/cnn.py"})]

    result = CliRunner().invoke(main, ["jenkins", "status", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["job"]: row for row in json.loads(result.output)}
    assert list(rows) == JOBS
    assert rows["mlci-1-fetch"]["last_build"] == 1 and rows["mlci-1-fetch"]["result"] == "SUCCESS"
    assert rows["mlci-2-launch"]["last_build"] is None and rows["mlci-2-launch"]["exists"]

    # a build's description (the Description Setter's line) is its trial and metric in the table
    server.builds["mlci-1-fetch"][-1].update(result="UNSTABLE", description="trial 3: accuracy 0.9120 < 0.95")
    rows = {row["job"]: row for row in json.loads(CliRunner().invoke(main, ["jenkins", "status", "--json"]).output)}
    assert rows["mlci-1-fetch"]["description"] == "trial 3: accuracy 0.9120 < 0.95"
    result = CliRunner().invoke(main, ["jenkins", "status"])
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if "mlci-1-fetch" in line)
    assert "UNSTABLE" in row and "trial 3: accuracy" in row


def test_status_marks_jobs_that_are_not_deployed(jenkins_env):
    """The HTTP server stands in for Jenkins (it cannot be downloaded here)."""
    result = CliRunner().invoke(main, ["jenkins", "status"])
    assert result.exit_code == 0, result.output
    assert result.output.count("missing") == 6


def test_trigger_of_an_unknown_job_says_deploy_first(jenkins_env):
    """The HTTP server stands in for Jenkins (it cannot be downloaded here)."""
    result = CliRunner().invoke(main, ["jenkins", "trigger", "--job", "nope"])
    assert result.exit_code == 2
    assert "triggering nope: not found" in result.output and "mlci jenkins deploy" in result.output


def test_a_wrong_token_is_refused_by_the_server(jenkins_env, monkeypatch):
    """The HTTP server stands in for Jenkins (it cannot be downloaded here); it requires this user:token."""
    jenkins_env.auth = "ci-bot:the-right-token"
    result = CliRunner().invoke(main, ["jenkins", "deploy"])
    assert result.exit_code == 7
    assert f"{jenkins_env.url}: reading the installed plugins failed" in result.output  # the first call
    assert "check JENKINS_URL, JENKINS_USER and JENKINS_API_TOKEN" in result.output
    assert "11aa22bb33cc" not in result.output and jenkins_env.jobs == {}
    monkeypatch.setenv("JENKINS_API_TOKEN", "the-right-token")
    assert CliRunner().invoke(main, ["jenkins", "deploy"]).exit_code == 0 and len(jenkins_env.jobs) == 6


def test_deploy_without_url_says_what_to_export(monkeypatch):
    monkeypatch.delenv("JENKINS_URL", raising=False)
    result = CliRunner().invoke(main, ["jenkins", "deploy"])
    assert result.exit_code == 2
    assert "JENKINS_URL is not set; export JENKINS_URL=" in result.output


def test_deploy_with_user_but_no_token_is_refused(monkeypatch):
    monkeypatch.setenv("JENKINS_URL", "http://127.0.0.1:9/")
    monkeypatch.setenv("JENKINS_USER", "ci-bot")
    monkeypatch.delenv("JENKINS_API_TOKEN", raising=False)
    result = CliRunner().invoke(main, ["jenkins", "deploy"])
    assert result.exit_code == 2
    assert "JENKINS_API_TOKEN is not set but JENKINS_USER is" in result.output


def test_unreachable_server_is_a_runner_error(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with running() as server:
        url = server.url  # a port that was free a moment ago and is closed now
    monkeypatch.setenv("JENKINS_URL", url)
    monkeypatch.delenv("JENKINS_USER", raising=False)
    monkeypatch.delenv("JENKINS_API_TOKEN", raising=False)
    result = CliRunner().invoke(main, ["jenkins", "status"])
    assert result.exit_code == 7
    assert f"{url}: reading mlci-1-fetch failed" in result.output and "check JENKINS_URL" in result.output


# ----------------------------------------------------------------------------- job 5's decision


def status(**changes) -> dict:
    """`mlci status --json` as the run oracle writes it (only the keys job 5 reads matter here)."""
    base = {"run_id": "cnn-0123456789", "status": "running", "finished": False, "reason": None, "event": None,
            "message": None, "threshold": 0.8, "metric": "accuracy", "best_trial": 0, "best_value": 0.5,
            "next": "launch", "next_trial": 1}
    return {**base, **changes}


@pytest.mark.parametrize("changes, action, event", [
    ({}, "retrain", None),
    ({"status": "met", "finished": True, "reason": "met", "event": "success", "next_trial": None}, "notify", "success"),
    ({"status": "exhausted", "finished": True, "reason": "budget", "event": "budget-exhausted", "next_trial": None},
     "notify", "budget-exhausted"),
    ({"status": "exhausted", "finished": True, "reason": "strategy", "event": "budget-exhausted"},
     "notify", "budget-exhausted"),  # a finished run is announced even if a proposal was left untrained
    ({"status": "failed", "finished": True, "reason": "trial-failed", "event": "trial-failed", "next_trial": None},
     "notify", "trial-failed"),
    # job 5 never recomputes "met" from the numbers: only the oracle's verdict counts
    ({"best_value": 0.85}, "retrain", None),
])
def test_decide_reads_the_oracles_verdict(changes, action, event):
    decision = jenkins.decide(status(**changes))
    assert (decision.action, decision.event) == (action, event)


def test_decide_refuses_a_run_that_waits_for_a_proposal():
    with pytest.raises(UsageError, match=r"run cnn-0123456789 has not ended and no trial is proposed; propose one "
                                         r"first: `mlci tweak --run cnn-0123456789` \(job 4\)"):
        jenkins.decide(status(next="propose", next_trial=None))


def test_decide_cli_writes_the_retrain_file_only_to_retrain(tmp_path):
    status_file, retrain = tmp_path / "status.json", tmp_path / "mlci-retrain.properties"
    status_file.write_text(json.dumps(status()))
    result = CliRunner().invoke(main, ["jenkins", "decide", str(status_file), "--retrain", str(retrain)])
    assert result.exit_code == 0 and result.stdout == ""
    assert retrain.read_text() == "RUN_ID=cnn-0123456789\nNEXT_TRIAL=1\n"

    status_file.write_text(json.dumps(status(status="met", finished=True, event="success", best_value=0.95)))
    result = CliRunner().invoke(main, ["jenkins", "decide", str(status_file), "--retrain", str(retrain)])
    assert result.exit_code == 0 and result.stdout == "success\n"
    assert not retrain.exists()


def test_decide_names_a_file_that_is_not_status_json(tmp_path):
    bad = tmp_path / "status.json"
    bad.write_text(json.dumps({"run_id": "x", "status": "running"}))
    result = CliRunner().invoke(main, ["jenkins", "decide", str(bad), "--retrain", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert f"{bad}: key 'finished' missing; this is not the output of `mlci status --json`" in result.output


# ----------------------------------------------------------------------------- Jenkinsfile


def test_jenkinsfile_has_the_chain_the_loop_and_the_triggers():
    text = (REPO / "Jenkinsfile").read_text()
    for needle in ("disableConcurrentBuilds()", "githubPush()", "pollSCM(", "mlci fetch", "mlci launch",
                   "mlci wait", "mlci check", "mlci tweak", "mlci jenkins decide", "mlci monitor",
                   "mlci notify", "while (!event)", "post {", "emailext(",
                   # the same build results, description, publishers and agent label as the freestyle jobs
                   "agent { label 'mlci && docker' }", "mlci jenkins result", "unstable(", "currentBuild.description",
                   "publishHTML(", "reportName: 'report'", "fingerprint: true", "plot(", "trend.properties",
                   "mlci-results/notification.html", "attachmentsPattern: 'mlci-results/report.png'",
                   "mimeType: 'text/html'"):
        assert needle in text, needle


def lint(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(REPO / "scripts" / "lint-jenkinsfile.sh"), str(path)],
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_jenkinsfile_passes_npm_groovy_lint_and_a_broken_one_fails(tmp_path):
    require_programs("npm", "java", fix="npm-groovy-lint needs npm (Node 20) and Java 17; CI must lint the Jenkinsfile")
    clean = lint(REPO / "Jenkinsfile")
    assert clean.returncode == 0, clean.stdout[-3000:] + clean.stderr[-2000:]
    broken = tmp_path / "Jenkinsfile"
    text = (REPO / "Jenkinsfile").read_text()
    broken.write_text(text.replace("    }\n", "", 1))  # drop the brace that closes agent/options
    result = lint(broken)
    assert result.returncode != 0
    assert "NglParseError" in result.stdout + result.stderr


# ----------------------------------------------------------------------------- the chain as Jenkins runs it

SGD = '''"""A tiny scikit-learn model module for the chain tests, trained epoch by epoch (partial_fit)."""
from sklearn.linear_model import SGDClassifier

HPARAMS = {"epochs": 3, "alpha": 0.0001}


def build_model(hp):
    print("building the SGD classifier", flush=True)  # the trial's own print, for the console
    return SGDClassifier(alpha=hp.get("alpha", 0.0001), random_state=0)
'''


def epoch_lines(run, trial: int) -> list[str]:
    lines = run.trial(trial).log_path.read_text().splitlines()
    return [line for line in lines if line.startswith("epoch ")]


@pytest.mark.slow
def test_a_met_run_is_green_described_published_and_mailed_with_links(tmp_path, build_runner):
    """BuildRunner stands in for Jenkins (it cannot be downloaded here): it runs the rendered XML's shell
    steps with Jenkins' environment, honours unstable-return, and applies the triggers and publishers."""
    sha = model_repo(tmp_path / "models", SGD, 'dataset = "digits"\nrunner = "local"\nthreshold = 0.5\nmax_trials = 2\n')
    builds = build_runner().run("mlci-1-fetch")
    logs = logs_of(builds)
    assert [(b.job, b.result) for b in builds] == [
        ("mlci-1-fetch", "SUCCESS"), ("mlci-2-launch", "SUCCESS"), ("mlci-3-train", "SUCCESS"),
        ("mlci-4-check", "SUCCESS"), ("mlci-5-notify", "SUCCESS")], logs
    run_id = builds[1].params["RUN_ID"]
    run = RunStore(tmp_path / "mlci-home").run(run_id)
    value = run.trial(0).metrics().value

    # job 3's console: every epoch line of the trial with its metric, and the trial's own print
    train = builds[2]
    epochs = epoch_lines(run, 0)
    assert len(epochs) == 3 and all("val_accuracy=" in line for line in epochs)
    for line in epochs + ["building the SGD classifier"]:
        assert line in train.log.splitlines(), train.log
    assert "\x1b" not in train.log and "\r" not in train.log

    # each build's description: the run, then the trial, its metric and the threshold
    assert builds[0].description == f"run {run_id}"
    assert builds[2].description == f"trial 0: accuracy {value:.4f} ≥ 0.5 (threshold met)"
    assert builds[4].description == f"best trial 0: accuracy {value:.4f} ≥ 0.5 (threshold met)"

    # job 5 publishes the report, archives + fingerprints the best model, plots the best metric
    notify = builds[4]
    assert "<html" in notify.reports["report"].lower()
    assert {"mlci-results/best/model.joblib", "mlci-results/best/metrics.json"} <= set(notify.archived)
    assert notify.fingerprinted and notify.plot_points == [str(value)]
    # email-ext's body and subject are mlci's own notification, which links the build and its report
    workspace = tmp_path / "jenkins" / "workspace" / "mlci-5-notify" / "mlci-results"
    body = (workspace / "notification.html").read_text()
    assert "href='http://jenkins.invalid/job/mlci-5-notify/1/report/'" in body
    assert "href='http://jenkins.invalid/job/mlci-5-notify/1/'" in body
    assert (workspace / "subject.txt").read_text().startswith("✅ digits_knn reached accuracy")
    assert (workspace / "report.png").read_bytes()[:4] == b"\x89PNG"
    assert run.record().commit == sha


@pytest.mark.slow
def test_a_spent_budget_turns_the_chain_unstable(tmp_path, build_runner):
    """BuildRunner stands in for Jenkins (it cannot be downloaded here): exit 3 is the jobs' unstable-return;
    git and mlci are real."""
    # the baseline misses 0.999, so job 5 loops back to job 2 once before the budget of 2 is spent
    sha = model_repo(tmp_path / "models", SGD, 'dataset = "digits"\nrunner = "local"\nthreshold = 0.999\nmax_trials = 2\n')
    builds = build_runner().run("mlci-1-fetch")

    logs = logs_of(builds)
    assert [(b.job, b.result) for b in builds] == [
        ("mlci-1-fetch", "SUCCESS"), ("mlci-2-launch", "SUCCESS"), ("mlci-3-train", "SUCCESS"),
        ("mlci-4-check", "SUCCESS"), ("mlci-5-notify", "SUCCESS"),
        # trial 1 spends the budget: from its job 3 on, the run is yellow, and job 5 still announces it
        ("mlci-2-launch", "SUCCESS"), ("mlci-3-train", "UNSTABLE"), ("mlci-4-check", "UNSTABLE"),
        ("mlci-5-notify", "UNSTABLE")], logs
    run_id = builds[1].params["RUN_ID"]
    assert all(b.params["RUN_ID"] == run_id and b.params["COMMIT"] == sha for b in builds[1:]), logs
    assert [b.params["TRIAL"] for b in builds if b.job == "mlci-3-train"] == ["0", "1"]

    run = RunStore(tmp_path / "mlci-home").run(run_id)
    record = run.record()
    assert (record.commit, record.status) == (sha, "exhausted")
    assert builds[3].description.startswith("trial 0: accuracy ") and builds[3].description.endswith("< 0.999")
    assert builds[8].description == (f"best trial {record.best_trial}: accuracy {record.best_value:.4f} < 0.999 "
                                     "(budget spent: max_trials (2) reached)")
    assert (run.best_dir / "model.joblib").exists() and (run.best_dir / "metrics.json").exists()
    assert builds[8].reports and builds[8].plot_points == [str(record.best_value)]
    assert not builds[4].reports  # a build that only starts the next trial publishes nothing
    events = [json.loads(p.read_text()).get("event") for p in run.outbox.rglob("*.json")]
    assert "budget-exhausted" in events, logs


@pytest.mark.slow
def test_a_failing_trial_fails_job_three_which_triggers_the_monitor(tmp_path, build_runner):
    """BuildRunner stands in for Jenkins (it cannot be downloaded here); git and mlci are real."""
    broken = SGD.replace("    return SGDClassifier(", "    raise ValueError('broken on purpose')  # ")
    model_repo(tmp_path / "models", broken, 'dataset = "digits"\nrunner = "local"\nmax_restarts = 0\n')
    builds = build_runner().run("mlci-1-fetch")
    logs = logs_of(builds)
    assert [(b.job, b.result) for b in builds[:3]] == [
        ("mlci-1-fetch", "SUCCESS"), ("mlci-2-launch", "SUCCESS"), ("mlci-3-train", "FAILURE")], logs
    assert "trial 0 failed" in builds[2].log, logs
    assert "broken on purpose" in builds[2].log  # the trial's own traceback reached the console
    assert builds[2].description.startswith("trial 0: failed (accuracy threshold 0.8) (run failed: trial 0 failed")
    # job 6 is built for the failed run (what `mlci monitor --once` then does is issue 6's to test); the run
    # stays failed, so it is red too
    assert [(b.job, b.result) for b in builds[3:]] == [("mlci-6-monitor", "FAILURE")], logs
    assert builds[3].params["RUN_ID"] == builds[1].params["RUN_ID"] != ""
