"""Parity of the two drivers of the run oracle: `mlci run` and the six Jenkins jobs end a run the same way.

The same model, seed and config, driven (a) by `mlci run` and (b) by the rendered job scripts in trigger order
(BuildRunner stands in for Jenkins, which cannot be downloaded here; git, mlci and the trials are real).
"""
from __future__ import annotations

import json
import re
import textwrap

import pytest

from conftest import KNN_SOURCE, mlci
from jenkins_standin import logs_of, model_repo
from mlci.core.store import Run, RunStore

CONFIG = 'dataset = "digits"\nrunner = "{runner}"\nstrategy = "ladder"\nseed = 0\n'
# On the digits, the ladder's k-NN reaches 0.9378 (k=60), 0.9667 (k=30), 0.9844 (k=15).
MET = CONFIG + "threshold = 0.96\nmax_trials = 5\n"  # met by trial 1, after one tweak and a retrain
SPENT = CONFIG + "threshold = 0.99\nmax_trials = 2\n"  # two trials, both below
KNN = textwrap.dedent(KNN_SOURCE).lstrip()
BROKEN = KNN.replace("    return KNeighborsClassifier(", "    raise ValueError('broken on purpose')  # ")


def verdict(run: Run) -> dict:
    """What a person and Jenkins see of a finished run: run.json's verdict, the trials, the mail, the report."""
    record = run.record()
    headline = re.search(r"<h1>.*?<span[^>]*>(.*?)</span></h1>", (run.dir / "report.html").read_text()).group(1)
    return {
        "status": record.status, "reason": record.reason, "best_trial": record.best_trial,
        "best_value": record.best_value, "finished": record.finished_at is not None,
        "message": re.sub(r"/\S+", "<path>", record.message or ""),
        "trials": [(t.number, t.state().status, t.hparams().hparams) for t in run.trials()],
        "events": sorted(json.loads(p.read_text())["event"] for p in run.outbox.glob("*.json")),
        "headline": headline,
    }


def drive_both(tmp_path, build_runner, source: str, config: str):
    """(a) `mlci run` on the model as committed; (b) the job chain from job 1. Returns both runs and the builds."""
    sha = model_repo(tmp_path / "models", source, config)
    direct = mlci("run", str(tmp_path / "models" / "digits_knn.py"), "--commit", sha, "--home",
                  str(tmp_path / "direct"), "-q", timeout=900)
    builds = build_runner().run("mlci-1-fetch")
    [by_run] = RunStore(tmp_path / "direct").runs()
    [by_jobs] = RunStore(tmp_path / "mlci-home").runs()
    return direct, builds, by_run, by_jobs


@pytest.mark.slow
def test_a_met_run_ends_the_same_way_by_mlci_run_and_by_the_six_jobs(tmp_path, build_runner):
    direct, builds, by_run, by_jobs = drive_both(tmp_path, build_runner, KNN, MET.format(runner="local"))
    assert direct.returncode == 0, direct.stderr
    logs = logs_of(builds)
    assert [(b.job, b.result) for b in builds] == [
        ("mlci-1-fetch", "SUCCESS"), ("mlci-2-launch", "SUCCESS"), ("mlci-3-train", "SUCCESS"),
        ("mlci-4-check", "SUCCESS"), ("mlci-5-notify", "SUCCESS"),
        ("mlci-2-launch", "SUCCESS"), ("mlci-3-train", "SUCCESS"), ("mlci-4-check", "SUCCESS"),
        ("mlci-5-notify", "SUCCESS")], logs
    expected = verdict(by_run)
    assert expected["status"] == "met" and expected["best_trial"] == 1 and len(expected["trials"]) == 2
    assert expected["events"] == ["success"] and expected["headline"] == "reached the threshold"
    assert verdict(by_jobs) == expected, logs
    # the run stays ended: nothing is left RUNNING in the study, and the monitor finds nothing to close
    watched = mlci("monitor", "--once", "--home", str(tmp_path / "mlci-home"))
    assert watched.returncode == 0 and "left RUNNING" not in watched.stderr, watched.stderr
    status = json.loads(mlci("status", "--run", by_jobs.id, "--json", "--home", str(tmp_path / "mlci-home"),
                             check=True).stdout)
    assert (status["status"], status["finished"], status["event"]) == ("met", True, "success")


@pytest.mark.slow
def test_a_run_whose_budget_is_spent_ends_the_same_way_both_ways(tmp_path, build_runner):
    direct, builds, by_run, by_jobs = drive_both(tmp_path, build_runner, KNN, SPENT.format(runner="local"))
    assert direct.returncode == 3, direct.stderr
    logs = logs_of(builds)
    # the last trial spends the budget: from its job 3 on, the builds are yellow (the jobs' unstable-return)
    assert [b.job for b in builds].count("mlci-3-train") == 2, logs
    assert [b.result for b in builds] == ["SUCCESS"] * 6 + ["UNSTABLE"] * 3, logs
    expected = verdict(by_run)
    assert (expected["status"], expected["reason"], expected["message"]) == ("exhausted", "budget",
                                                                              "max_trials (2) reached")
    assert expected["events"] == ["budget-exhausted"] and expected["headline"] == "budget spent below the threshold"
    assert verdict(by_jobs) == expected, logs


@pytest.mark.slow
def test_a_run_whose_trial_fails_ends_the_same_way_both_ways(tmp_path, build_runner):
    direct, builds, by_run, by_jobs = drive_both(tmp_path, build_runner, BROKEN,
                                                 MET.format(runner="local") + "max_restarts = 0\n")
    assert direct.returncode == 5, direct.stderr
    logs = logs_of(builds)
    assert [(b.job, b.result) for b in builds] == [
        ("mlci-1-fetch", "SUCCESS"), ("mlci-2-launch", "SUCCESS"), ("mlci-3-train", "FAILURE"),
        ("mlci-6-monitor", "FAILURE")], logs  # the monitor's build shows the run's verdict: failed
    expected = verdict(by_run)
    assert (expected["status"], expected["reason"]) == ("failed", "trial-failed")
    assert expected["message"].startswith("trial 0 failed: ") and "broken on purpose" in expected["message"]
    assert expected["events"] == ["trial-failed"] and expected["headline"] == "failed"
    assert verdict(by_jobs) == expected, logs


@pytest.mark.slow
@pytest.mark.docker
def test_a_met_run_in_docker_ends_the_same_way_both_ways(tmp_path, build_runner, engine, docker_runs):
    direct, builds, by_run, by_jobs = drive_both(tmp_path, build_runner, KNN, MET.format(runner="docker"))
    docker_runs.extend([by_run.id, by_jobs.id])
    assert direct.returncode == 0, direct.stderr
    logs = logs_of(builds)
    assert all(b.result == "SUCCESS" for b in builds) and by_jobs.trial(0).state().container_id, logs
    expected = verdict(by_run)
    assert (expected["status"], expected["best_trial"], expected["events"]) == ("met", 1, ["success"])
    assert verdict(by_jobs) == expected, logs


@pytest.mark.slow
def test_the_job_chain_leaves_no_optuna_trial_running_once_the_run_has_ended(tmp_path, build_runner):
    """The issue this oracle fixes: the Jenkins path ended with run.json 'running' and study trials RUNNING."""
    import optuna  # a core dependency (install_requires): never skipped

    model_repo(tmp_path / "models", KNN, 'dataset = "digits"\nrunner = "local"\nstrategy = "optuna"\n'
                                         'threshold = 0.99\nmax_trials = 3\n')
    builds = build_runner().run("mlci-1-fetch")
    logs = logs_of(builds)
    assert [b.job for b in builds].count("mlci-3-train") == 3, logs
    assert [b.result for b in builds] == ["SUCCESS"] * 10 + ["UNSTABLE"] * 3, logs  # budget spent: yellow
    [run] = RunStore(tmp_path / "mlci-home").runs()
    record = run.record()
    assert (record.status, record.reason, record.finished_at is not None) == ("exhausted", "budget", True), logs
    storage = f"sqlite:///{run.study_path}"
    [summary] = optuna.get_all_study_summaries(storage)
    study = optuna.load_study(study_name=summary.study_name, storage=storage)
    assert [t.state for t in study.trials].count(optuna.trial.TrialState.RUNNING) == 0
    watched = mlci("monitor", "--once", "--home", str(tmp_path / "mlci-home"))
    assert watched.returncode == 0 and "left RUNNING" not in watched.stderr, watched.stderr
    assert mlci("notify", "--run", run.id, "--home", str(tmp_path / "mlci-home")).returncode == 0


@pytest.mark.slow
def test_a_later_trials_failure_moves_both_ways_on_to_the_next_proposal(tmp_path, build_runner):
    """Only trial 0 trains; the ladder's proposals raise in build_model. The run is not failed by them: job 3
    lets the chain go on (`mlci wait --keep-going`), as `mlci run` moves on, and both spend the budget alike."""
    picky = KNN.replace("    return KNeighborsClassifier(",
                        "    if hp['n_neighbors'] != 60:\n        raise ValueError('only 60 works')\n"
                        "    return KNeighborsClassifier(")
    direct, builds, by_run, by_jobs = drive_both(tmp_path, build_runner, picky,
                                                 SPENT.format(runner="local").replace("max_trials = 2", "max_trials = 3"))
    assert direct.returncode == 3, direct.stderr
    assert "trial 1 failed" in direct.stderr and "moving on to the next proposal" in direct.stderr
    logs = logs_of(builds)
    assert [b.job for b in builds].count("mlci-3-train") == 3, logs
    assert [b.result for b in builds] == ["SUCCESS"] * 10 + ["UNSTABLE"] * 3, logs  # budget spent: yellow
    assert "the run goes on to the next proposal" in [b for b in builds if b.job == "mlci-3-train"][1].log, logs
    expected = verdict(by_run)
    assert [status for _, status, _ in expected["trials"]][:2] == ["succeeded", "failed"]
    assert (expected["status"], expected["events"]) == ("exhausted", ["budget-exhausted"])
    assert verdict(by_jobs) == expected, logs
