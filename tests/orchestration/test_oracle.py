"""The run oracle's decisions, on a real run store written by hand (no training: the oracle reads only the store).

Each rule is checked where it lives: launch / propose / done with the reason, the verdict written once.
"""
from __future__ import annotations

import json
import shutil

import pytest

from conftest import mlci, write_model
from mlci.core.config import Config
from mlci.core.errors import MetricsError
from mlci.core.states import DoneReason, RunStatus, TrialStatus
from mlci.core.store import HparamsRecord, Kind, MetricsRecord, RunRecord, RunStore, write_json
from mlci.orchestration.oracle import Action, RunOracle, Step
from mlci.orchestration.steps import status_facts

MODEL = '''
    from sklearn.neighbors import KNeighborsClassifier
    HPARAMS = {"n_neighbors": 5}
    def build_model(hp):
        return KNeighborsClassifier(n_neighbors=hp["n_neighbors"])
'''


def make_run(tmp_path, **config):
    model = write_model(tmp_path / "m", MODEL, "knn.py")
    config = Config(**{"strategy": "ladder", "dataset": "digits", **config})
    return RunStore(tmp_path / "store").open_run(RunRecord(
        run_id="knn-1", model_name="knn", model_file=str(model), source_dir=str(model.parent), content_hash="c",
        kind=Kind(framework="sklearn", architecture="classical"), config=config))


def trial_with(run, value=None, status=TrialStatus.SUCCEEDED, hparams=None):
    """A trial as the lifecycle leaves it: proposal, outcome in trial.json, metrics when it trained."""
    trial = run.new_trial()
    trial.write_hparams(HparamsRecord(trial=trial.number, hparams=hparams or {"n_neighbors": 5 + trial.number}))
    if value is not None:
        write_json(trial.metrics_path, MetricsRecord(trial=trial.number, value=value))
    if status != TrialStatus.PENDING:
        trial.update_state(status=status, reason="build_model raised ValueError" if status == "failed" else None)
    return trial


def test_a_new_run_launches_its_baseline_first(tmp_path):
    run = make_run(tmp_path)
    oracle = RunOracle(run)
    peek = oracle.ask(create=False)
    assert (peek.action, peek.trial) == (Action.LAUNCH, None) and run.trials() == []  # asking wrote nothing
    step = oracle.ask()
    assert step.action is Action.LAUNCH and step.trial.number == 0
    record = step.trial.hparams()
    assert (record.proposed_by, record.hparams) == ("baseline", {"n_neighbors": 5})
    assert oracle.ask().trial.number == 0  # the same proposal again until it is trained: no second baseline


def test_below_the_threshold_with_budget_left_asks_for_a_proposal_and_the_run_goes_on(tmp_path):
    run = make_run(tmp_path, threshold=0.95, max_trials=3)
    trial = trial_with(run, 0.90)
    oracle = RunOracle(run)
    oracle.tell(trial)
    assert oracle.ask().action is Action.PROPOSE
    record = run.record()
    assert (record.status, record.best_trial, record.best_value, record.finished_at) == ("created", 0, 0.90, None)
    assert (run.best_dir / "metrics.json").exists()


def test_a_trial_that_meets_the_threshold_ends_the_run_once(tmp_path):
    run = make_run(tmp_path, threshold=0.95, max_trials=5)
    trial_with(run, 0.90)
    best = trial_with(run, 0.96)
    oracle = RunOracle(run)
    oracle.start()
    oracle.tell(best)
    record = run.record()
    assert (record.status, record.reason, record.best_trial) == (RunStatus.MET, DoneReason.MET, 1)
    assert record.message == "trial 1 reached accuracy 0.9600 ≥ 0.95" and record.finished_at
    assert oracle.next().action is Action.DONE
    oracle.tell(best)  # told again (a Jenkins retry, the monitor): the verdict and its time stay
    assert run.record().finished_at == record.finished_at
    assert oracle.outcome().event == "success" and oracle.outcome().exit_code == 0


@pytest.mark.parametrize("config, values, reason, message", [
    ({"max_trials": 2}, [0.5, 0.6], DoneReason.BUDGET, "max_trials (2) reached"),
    ({"max_trials": 9, "patience": 2}, [0.7, 0.6, 0.65], DoneReason.PATIENCE, "no improvement in 2 trials (patience)"),
])
def test_a_spent_budget_ends_the_run_below_the_threshold(tmp_path, config, values, reason, message):
    run = make_run(tmp_path, threshold=0.95, **config)
    trials = [trial_with(run, value) for value in values]
    oracle = RunOracle(run)
    oracle.tell(trials[-1])
    record = run.record()
    assert (record.status, record.reason, record.message) == (RunStatus.EXHAUSTED, reason, message)
    facts = status_facts(run)
    assert (facts["finished"], facts["event"], facts["next_trial"]) == (True, "budget-exhausted", None)
    assert oracle.outcome().exit_code == 3


def test_the_users_own_settings_failing_ends_the_run_failed_and_a_later_failure_does_not(tmp_path):
    run = make_run(tmp_path, threshold=0.95, max_trials=5)
    failed = trial_with(run, status=TrialStatus.FAILED)
    oracle = RunOracle(run)
    oracle.tell(failed)
    record = run.record()
    assert (record.status, record.reason) == (RunStatus.FAILED, DoneReason.TRIAL_FAILED)
    assert record.message == "trial 0 failed: build_model raised ValueError"
    assert oracle.outcome().event == "trial-failed" and oracle.outcome().exit_code == 5

    other = make_run(tmp_path / "b", threshold=0.95, max_trials=5)
    trial_with(other, 0.9)
    later = trial_with(other, status=TrialStatus.FAILED)
    RunOracle(other).tell(later)
    assert other.record().status == RunStatus.CREATED and RunOracle(other).ask().action is Action.PROPOSE


def test_a_raised_threshold_reopens_a_met_run(tmp_path):
    run = make_run(tmp_path, threshold=0.8, max_trials=5)
    trial = trial_with(run, 0.9)
    RunOracle(run).tell(trial)
    assert run.record().status == RunStatus.MET
    run.update(config=run.record().config.model_copy(update={"threshold": 0.95}))
    oracle = RunOracle(run)
    assert oracle.ask().action is Action.PROPOSE
    oracle.start()
    record = run.record()
    assert (record.status, record.reason, record.finished_at, record.message) == (RunStatus.RUNNING, None, None, None)


def test_optimize_searches_on_after_the_threshold_until_the_budget(tmp_path):
    run = make_run(tmp_path, threshold=0.8, max_trials=2, optimize=True)
    RunOracle(run).tell(trial_with(run, 0.9))
    assert RunOracle(run).ask().action is Action.PROPOSE
    RunOracle(run).tell(trial_with(run, 0.85))
    record = run.record()
    assert (record.status, record.best_trial) == (RunStatus.MET, 0)
    assert record.message == "trial 0 reached accuracy 0.9000 ≥ 0.8; searched on for the best (max_trials (2) reached)"


def test_loss_is_better_lower_and_met_below_the_threshold(tmp_path):
    run = make_run(tmp_path, metric="loss", threshold=0.3, max_trials=5)
    trial_with(run, 0.5)
    best = trial_with(run, 0.2)
    RunOracle(run).tell(best)
    record = run.record()
    assert (record.status, record.best_trial, record.message) == ("met", 1, "trial 1 reached loss 0.2000 ≤ 0.3")


def test_the_verdict_waits_for_trials_still_training_beside_the_told_one(tmp_path):
    run = make_run(tmp_path, threshold=0.8, max_trials=5)
    trial_with(run, status=TrialStatus.RUNNING)
    done = trial_with(run, 0.9)
    oracle = RunOracle(run)
    oracle.tell(done)
    assert run.record().status == RunStatus.CREATED and run.record().best_trial == 1
    assert oracle.ask(busy={0}).action is Action.DONE


def test_launch_answers_from_the_oracle_with_documented_exit_codes(tmp_path):
    run = make_run(tmp_path, threshold=0.95, max_trials=5)
    home = str(tmp_path / "store")
    RunOracle(run).tell(trial_with(run, 0.9))
    waiting = mlci("launch", "--run", run.id, "--home", home)
    assert waiting.returncode == 2
    assert waiting.stderr.strip() == (f"mlci: error: run {run.id} has no proposed trial to launch; propose one "
                                      f"first: `mlci tweak --run {run.id}` (job 4)")
    RunOracle(run).tell(trial_with(run, 0.97))
    ended = mlci("launch", "--run", run.id, "--home", home)
    assert ended.returncode == 0 and ended.stdout == ""
    assert ended.stderr.strip() == (f"run {run.id} has ended (met: trial 1 reached accuracy 0.9700 ≥ 0.95); "
                                    "nothing to launch")
    status = json.loads(mlci("status", "--run", run.id, "--json", "--home", home, check=True).stdout)
    assert (status["status"], status["reason"], status["event"], status["best_trial"]) == ("met", "met", "success", 1)


def test_check_of_a_trial_without_a_metric_is_below_the_threshold(tmp_path):
    """Job 4 after a failed or pruned trial: below the threshold (exit 3, tweak on), not a metrics error."""
    run = make_run(tmp_path, threshold=0.95, max_trials=5)
    trial_with(run, 0.9)
    trial_with(run, status=TrialStatus.FAILED)
    result = RunOracle(run).check(1)
    assert (result.met, result.value, result.line()) == (False, None, "trial 1: failed, no accuracy (below the threshold)")
    done = mlci("check", "--run", run.id, "--trial", "1", "--home", str(tmp_path / "store"))
    assert done.returncode == 3 and done.stdout.strip() == "trial 1: failed, no accuracy (below the threshold)"


@pytest.mark.parametrize("metric, threshold, values, compare", [
    ("accuracy", 0.95, [0.9, 0.95], "accuracy 0.9500 ≥ 0.95"),
    ("loss", 0.3, [0.5, 0.3], "loss 0.3000 ≤ 0.3"),
])
def test_a_trial_exactly_at_the_threshold_meets_it(tmp_path, metric, threshold, values, compare):
    """"met" is reached, not passed: a metric equal to the threshold ends the run met (accuracy and loss)."""
    run = make_run(tmp_path, metric=metric, threshold=threshold, max_trials=5)
    trials = [trial_with(run, value) for value in values]
    oracle = RunOracle(run)
    oracle.tell(trials[-1])
    record = run.record()
    assert (record.status, record.reason, record.best_trial) == (RunStatus.MET, DoneReason.MET, 1)
    assert record.message == f"trial 1 reached {compare}"
    assert oracle.check(1).met and oracle.check(1).line() == f"trial 1: {compare} (met)"


@pytest.mark.parametrize("values, patience, action", [
    ([0.7, 0.6], 2, Action.PROPOSE),  # one trial without improvement: patience 2 not yet spent
    ([0.7, 0.6, 0.65], 2, Action.DONE),  # two: spent
    ([0.7, 0.6, 0.8, 0.75], 2, Action.PROPOSE),  # an improvement resets the count
    ([0.7, 0.7], 1, Action.DONE),  # an equal value is no improvement
    ([0.7], 1, Action.PROPOSE),  # the first trial is the baseline to improve on
])
def test_patience_counts_trials_since_the_last_improvement(tmp_path, values, patience, action):
    run = make_run(tmp_path, threshold=0.95, max_trials=20, patience=patience)
    for value in values:
        trial_with(run, value)
    step = RunOracle(run).ask()
    assert step.action is action
    if action is Action.DONE:
        assert (step.reason, step.message) == (DoneReason.PATIENCE, f"no improvement in {patience} trials (patience)")


@pytest.mark.parametrize("minutes_ago, action", [(3.0, Action.DONE), (1.5, Action.PROPOSE)])
def test_max_minutes_ends_the_run_once_that_long_has_passed_since_it_was_created(tmp_path, minutes_ago, action):
    """The clock starts at run.json's created_at (written back here; nothing sleeps): 2 minutes allowed."""
    from datetime import datetime, timedelta, timezone

    run = make_run(tmp_path, threshold=0.95, max_trials=20, max_minutes=2)
    run.update(created_at=(datetime.now(timezone.utc) - timedelta(minutes=minutes_ago)).isoformat(timespec="seconds"))
    trial = trial_with(run, 0.5)
    oracle = RunOracle(run)
    oracle.tell(trial)
    step = oracle.ask()
    assert step.action is action
    if action is Action.DONE:
        assert (step.reason, step.message) == (DoneReason.TIME, "max_minutes (2) reached")
        record = run.record()
        assert (record.status, record.reason) == (RunStatus.EXHAUSTED, DoneReason.TIME)
    else:
        assert run.record().status == RunStatus.CREATED


def test_a_run_with_max_minutes_and_none_elapsed_never_ends_for_time_before_its_first_trial(tmp_path):
    run = make_run(tmp_path, threshold=0.95, max_trials=20, max_minutes=0.5)
    step = RunOracle(run).ask()
    assert step.action is Action.LAUNCH and step.trial.number == 0


# ----------------------------------------------------------------------------- every answer's facts (mutation-tested)


@pytest.mark.parametrize("status, code", [(RunStatus.MET, 0), (RunStatus.EXHAUSTED, 3), (RunStatus.FAILED, 5),
                                          (RunStatus.CREATED, 3), (RunStatus.INTERRUPTED, 3)])
def test_exit_codes_of_run_statuses_and_done_steps(status, code):
    from mlci.orchestration.oracle import exit_code_for

    assert exit_code_for(status) == code
    reason = {RunStatus.MET: DoneReason.MET, RunStatus.EXHAUSTED: DoneReason.BUDGET,
              RunStatus.FAILED: DoneReason.TRIAL_FAILED}.get(status)
    if reason is not None:
        assert Step(Action.DONE, reason=reason).exit_code == code
    assert Step(Action.LAUNCH).exit_code == 0 and Step(Action.PROPOSE).exit_code == 0


def test_the_latest_measured_trial_and_a_clear_error_before_any(tmp_path):
    run = make_run(tmp_path)
    oracle = RunOracle(run)
    with pytest.raises(MetricsError) as info:
        oracle.latest_measured()
    assert info.value.one_line() == ("run knn-1 has no trial with metrics yet; train one first: `mlci launch --run "
                                     "knn-1`, then `mlci wait --run knn-1`")
    trial_with(run, 0.5)
    trial_with(run, 0.6)
    trial_with(run, 0.7)
    trial_with(run, status=TrialStatus.PENDING)
    assert oracle.latest_measured().number == 2
    result = oracle.check()
    assert (result.trial, result.value, result.met, result.status) == (2, 0.7, False, TrialStatus.SUCCEEDED)
    assert result.line() == "trial 2: accuracy 0.7000 < 0.8 (below the threshold)"
    assert oracle.check(0).value == 0.5 and oracle.check(0).run_id == "knn-1"


@pytest.mark.parametrize("status", [TrialStatus.FAILED, TrialStatus.PRUNED])
def test_check_of_a_failed_or_pruned_trial_is_below_without_a_value_unless_it_has_metrics(tmp_path, status):
    run = make_run(tmp_path, threshold=0.8)
    trial_with(run, status=status)
    result = RunOracle(run).check(0)
    assert (result.run_id, result.trial, result.value, result.objective, result.status, result.met) == (
        "knn-1", 0, None, RunOracle(run).objective, status, False)
    assert result.line() == f"trial 0: {status}, no accuracy (below the threshold)"
    write_json(run.trial(0).metrics_path, MetricsRecord(trial=0, value=0.9))  # pruned after a last report
    result = RunOracle(run).check(0)
    assert (result.value, result.met, result.line()) == (0.9, True, "trial 0: accuracy 0.9000 ≥ 0.8 (met)")
    assert result.status == status
    with pytest.raises(MetricsError):
        RunOracle(make_run(tmp_path / "b")).check(0)  # no metrics, not failed: a metrics error, not "below"


def test_a_strategy_with_nothing_left_to_try_ends_the_run_exhausted(tmp_path):
    model = write_model(tmp_path / "nb", '''
        from sklearn.naive_bayes import GaussianNB
        HPARAMS = {}
        def build_model(hp):
            return GaussianNB()
    ''', "nb.py")
    run = RunStore(tmp_path / "store").open_run(RunRecord(
        run_id="nb-1", model_name="nb", model_file=str(model), source_dir=str(model.parent), content_hash="c",
        config=Config(strategy="ladder", dataset="digits", threshold=0.99, max_trials=5)))
    oracle = RunOracle(run)
    oracle.tell(trial_with_metrics(run, oracle.next().trial, 0.8))
    step = oracle.next()
    assert (step.action, step.reason, step.message) == (Action.DONE, DoneReason.STRATEGY,
                                                        "the strategy has nothing left to try")
    record = run.record()
    assert (record.status, record.reason, record.message) == (RunStatus.EXHAUSTED, DoneReason.STRATEGY,
                                                              "the strategy has nothing left to try")


def test_the_outcome_tells_every_fact_of_a_run_going_on_and_then_ended(tmp_path):
    run = make_run(tmp_path, threshold=0.8, max_trials=5)
    oracle = RunOracle(run)
    trial_with(run, 0.5)
    trial_with(run, status=TrialStatus.RUNNING)
    oracle.tell(run.trial(0))
    going = oracle.outcome()
    assert (going.run_id, going.status, going.reason, going.message, going.best_trial, going.best_value) == (
        "knn-1", RunStatus.CREATED, None, None, 0, 0.5)
    assert (going.trials, going.trials_done, going.finished_at, going.finished, going.event) == (2, 1, None, False,
                                                                                                   None)
    assert going.next.action is Action.LAUNCH and going.next.trial.number == 1 and going.exit_code == 3
    assert going.objective == oracle.objective and run.trial_numbers() == [0, 1]  # asking created nothing
    run.trial(1).update_state(status=TrialStatus.SUCCEEDED)
    write_json(run.trial(1).metrics_path, MetricsRecord(trial=1, value=0.85))
    oracle.tell(run.trial(1))
    ended = oracle.outcome()
    assert (ended.status, ended.reason, ended.best_trial, ended.best_value, ended.trials, ended.trials_done) == (
        RunStatus.MET, DoneReason.MET, 1, 0.85, 2, 2)
    assert ended.message == "trial 1 reached accuracy 0.8500 ≥ 0.8" and ended.finished_at == run.record().finished_at
    assert (ended.finished, ended.event, ended.exit_code) == (True, "success", 0)
    assert (ended.next.action, ended.next.reason, ended.next.message) == (Action.DONE, DoneReason.MET, ended.message)


def test_an_error_ends_the_run_failed_with_its_line_and_an_interrupt_asks_for_a_rerun(tmp_path):
    from mlci.core.errors import RunnerError

    run = make_run(tmp_path)
    oracle = RunOracle(run)
    oracle.interrupt()
    record = run.record()
    assert (record.status, record.message) == (RunStatus.INTERRUPTED,
                                               "interrupted; run the same command again to continue")
    assert record.finished_at is None and not oracle.outcome().finished
    ended = oracle.fail(RunnerError("no Docker engine answers", hint="start one"))
    assert (ended.status, ended.reason, ended.message) == (RunStatus.FAILED, DoneReason.ERROR,
                                                          "no Docker engine answers; start one")
    assert ended.finished_at and run.record() == ended
    assert (oracle.outcome().event, oracle.outcome().exit_code) == ("pipeline-error", 5)
    assert oracle.outcome().next == Step(Action.DONE, reason=DoneReason.ERROR, message="no Docker engine answers; start one")
    oracle.finish(Step(Action.DONE, reason=DoneReason.BUDGET))  # a verdict without a message reads as ""
    assert oracle.outcome().next == Step(Action.DONE, reason=DoneReason.BUDGET, message="")


def test_the_outcome_of_a_new_run_writes_nothing(tmp_path):
    run = make_run(tmp_path)
    outcome = RunOracle(run).outcome()
    assert (outcome.next.action, outcome.next.trial, outcome.trials) == (Action.LAUNCH, None, 0)
    assert run.trials() == []


def test_an_oracle_given_a_config_proposes_with_it_not_the_stored_one(tmp_path):
    """`mlci run --strategy optuna` on a run stored with the ladder: the proposal comes from the config given."""
    run = make_run(tmp_path, threshold=0.99, max_trials=5)
    trial_with(run, 0.5)
    config = run.record().config.model_copy(update={"strategy": "optuna", "threshold": 0.8})
    oracle = RunOracle(run, config)
    step = oracle.next()
    assert step.action is Action.LAUNCH and step.trial.hparams().proposed_by.startswith("optuna")
    oracle.tell(trial_with_metrics(run, step.trial, 0.9))  # met: the study of that config learns it
    assert run.record().status == RunStatus.MET
    import optuna

    from mlci.tuning.study import open_storage, storage_url, study_name

    study = optuna.load_study(study_name=study_name(run), storage=open_storage(storage_url(run, None)))
    assert [t.state.name for t in study.trials][-1] == "COMPLETE"


def test_telling_a_run_without_trials_creates_none(tmp_path):
    run = make_run(tmp_path)
    RunOracle(run).tell()
    assert run.trials() == [] and run.record().status == RunStatus.CREATED


def test_best_follows_the_best_trial(tmp_path):
    run = make_run(tmp_path, threshold=0.99, max_trials=9)
    oracle = RunOracle(run)
    for value, best in ((0.5, 0.5), (0.7, 0.7), (0.6, 0.7)):
        oracle.tell(trial_with(run, value))
        assert json.loads((run.best_dir / "metrics.json").read_text())["value"] == best
    assert (run.record().best_trial, run.record().best_value) == (1, 0.7)
    shutil.rmtree(run.best_dir)  # lost (a half-done copy, a person's rm): the next verdict restores it
    oracle.tell()
    assert json.loads((run.best_dir / "metrics.json").read_text())["value"] == 0.7
    for trial in run.trials():  # no measured trial any more: no best
        trial.metrics_path.unlink()
    oracle.tell()
    assert (run.record().best_trial, run.record().best_value) == (None, None)


def test_a_verdict_is_written_once_per_reason(tmp_path):
    run = make_run(tmp_path)
    oracle = RunOracle(run)
    oracle.finish(Step(Action.DONE, reason=DoneReason.BUDGET, message="first"))
    oracle.finish(Step(Action.DONE, reason=DoneReason.BUDGET, message="again"))  # the same verdict: kept
    assert (run.record().reason, run.record().message) == (DoneReason.BUDGET, "first")
    oracle.finish(Step(Action.DONE, reason=DoneReason.PATIENCE, message="other"))  # same status, other reason
    assert (run.record().status, run.record().reason, run.record().message) == (RunStatus.EXHAUSTED,
                                                                                DoneReason.PATIENCE, "other")
    oracle.finish(Step(Action.DONE, reason=DoneReason.ERROR, message="broke"))
    assert (run.record().status, run.record().message) == (RunStatus.FAILED, "broke")
    with pytest.raises(AssertionError):
        oracle.finish(Step(Action.DONE))  # a verdict needs a reason


def test_next_launches_the_baseline_then_the_strategys_proposal(tmp_path):
    run = make_run(tmp_path, threshold=0.99, max_trials=3)
    oracle = RunOracle(run)
    first = oracle.next()
    assert (first.action, first.trial.number) == (Action.LAUNCH, 0)
    oracle.tell(trial_with_metrics(run, first.trial, 0.9))
    second = oracle.next()
    assert (second.action, second.trial.number) == (Action.LAUNCH, 1)
    record = second.trial.hparams()
    assert record.proposed_by != "baseline" and record.hparams != {"n_neighbors": 5}
    assert run.record().status == RunStatus.CREATED  # a launch is not a verdict


def test_next_finishes_the_run_when_done_unless_trials_are_busy(tmp_path):
    run = make_run(tmp_path, threshold=0.8, max_trials=5)
    trial_with(run, 0.9)
    busy = RunOracle(run).next(busy={7})
    assert busy.action is Action.DONE and run.record().status == RunStatus.CREATED
    done = RunOracle(run).next()
    assert (done.action, done.reason) == (Action.DONE, DoneReason.MET) and run.record().status == RunStatus.MET


def trial_with_metrics(run, trial, value):
    write_json(trial.metrics_path, MetricsRecord(trial=trial.number, value=value))
    trial.update_state(status=TrialStatus.SUCCEEDED)
    return trial


def test_the_verdict_tells_the_study_so_no_optuna_trial_is_left_running(tmp_path):
    import optuna

    from mlci.tuning.study import open_storage, storage_url, study_name

    run = make_run(tmp_path, strategy="optuna", threshold=0.8, max_trials=5)
    oracle = RunOracle(run)
    oracle.tell(trial_with_metrics(run, oracle.next().trial, 0.5))
    proposed = oracle.next().trial
    assert proposed.hparams().proposed_by.startswith("optuna")
    oracle.tell(trial_with_metrics(run, proposed, 0.9))  # met: the run ends without another proposal
    assert run.record().status == RunStatus.MET
    study = optuna.load_study(study_name=study_name(run), storage=open_storage(storage_url(run, None)))
    assert [(t.state.name, t.value) for t in study.trials] == [("COMPLETE", 0.5), ("COMPLETE", 0.9)]


def test_a_corrupt_metrics_file_is_skipped_not_the_end_of_the_scan(tmp_path):
    run = make_run(tmp_path, threshold=0.99)
    trial_with(run, 0.5).metrics_path.write_text("{truncated")
    trial_with(run, 0.7)
    assert [(t.number, v) for t, v in RunOracle(run).measured()] == [(1, 0.7)]


def test_max_minutes_counts_minutes_of_sixty_seconds(tmp_path):
    """605 minutes after a run with a 600-minute budget began, the time is spent (not 595 "minutes" of 61 s)."""
    from datetime import datetime, timedelta, timezone

    run = make_run(tmp_path, threshold=0.99, max_minutes=600)
    run.update(created_at=(datetime.now(timezone.utc) - timedelta(minutes=605)).isoformat(timespec="seconds"))
    trial_with(run, 0.5)
    assert RunOracle(run).ask().reason is DoneReason.TIME


def test_patience_counts_pruned_trials_without_a_value(tmp_path):
    run = make_run(tmp_path, threshold=0.99, patience=1)
    trial_with(run, status=TrialStatus.PRUNED)
    assert RunOracle(run).ask().action is Action.PROPOSE  # a pruned trial is no failure of the model
    trial_with(run, status=TrialStatus.PRUNED)
    assert RunOracle(run).ask().reason is DoneReason.PATIENCE


def test_the_users_settings_failing_fail_the_run_even_beside_a_parallel_success(tmp_path):
    run = make_run(tmp_path, threshold=0.99)
    trial_with(run, status=TrialStatus.FAILED)
    trial_with(run, 0.5)
    assert RunOracle(run).failure() == "trial 0 failed: build_model raised ValueError"


def test_every_finished_trial_failing_fails_the_run_while_the_baseline_still_trains(tmp_path):
    run = make_run(tmp_path, threshold=0.99)
    trial_with(run, status=TrialStatus.RUNNING)
    trial_with(run, status=TrialStatus.FAILED)
    trial_with(run, status=TrialStatus.FAILED)
    assert RunOracle(run).failure() == "trial 1 failed: build_model raised ValueError"
