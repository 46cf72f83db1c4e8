"""The objective decides "better" and "met" alone: boundaries (a metric exactly at the threshold is met), direction
(loss is better lower), missing values; and the run/trial states it feeds."""
from __future__ import annotations

import math

import pytest

from mlci.core.config import Config
from mlci.core.objective import Objective
from mlci.core.states import DoneReason, RunStatus, TrialStatus

ACCURACY = Objective("accuracy", 0.8, True)
LOSS = Objective("loss", 0.3, False)


def test_a_metric_exactly_at_the_threshold_is_met_for_accuracy_and_for_loss():
    """The docs promise "met" when the metric reaches the threshold: >= for accuracy, <= for loss."""
    assert ACCURACY.met(0.8) and ACCURACY.met(0.81) and not ACCURACY.met(0.7999)
    assert LOSS.met(0.3) and LOSS.met(0.29) and not LOSS.met(0.3001)
    assert ACCURACY.compare(0.8) == "accuracy 0.8000 ≥ 0.8" and LOSS.compare(0.3) == "loss 0.3000 ≤ 0.3"
    assert ACCURACY.compare(0.5) == "accuracy 0.5000 < 0.8" and LOSS.compare(0.5) == "loss 0.5000 > 0.3"


@pytest.mark.parametrize("value", [None, math.nan])
def test_a_missing_metric_is_never_met_and_never_better(value):
    for objective in (ACCURACY, LOSS):
        assert not objective.met(value)
        assert not objective.better(value, 0.5) and not objective.better(value, None)
        assert objective.better(0.5, value)
        assert objective.compare(value) == f"{objective.metric} — (threshold {objective.threshold:g})"


def test_better_is_strict_and_follows_the_direction():
    assert ACCURACY.better(0.9, 0.8) and not ACCURACY.better(0.8, 0.9) and not ACCURACY.better(0.8, 0.8)
    assert LOSS.better(0.2, 0.3) and not LOSS.better(0.3, 0.2) and not LOSS.better(0.3, 0.3)
    assert (ACCURACY.direction, LOSS.direction) == ("maximize", "minimize")


@pytest.mark.parametrize("metric, higher", [("accuracy", True), ("val_accuracy", True), ("f1", True), ("loss", False)])
def test_the_objective_of_a_config_takes_its_metric_threshold_and_direction(metric, higher):
    objective = Objective.of(Config(metric=metric, threshold=0.5))
    assert objective == Objective(metric, 0.5, higher)


def test_an_unknown_metric_is_refused_naming_the_known_ones():
    with pytest.raises(ValueError) as info:
        Config(metric="precision")
    assert "one of accuracy, f1, loss, val_accuracy" in str(info.value)


def test_the_compare_line_rounds_to_the_digits_asked():
    assert ACCURACY.compare(0.91234, digits=2) == "accuracy 0.91 ≥ 0.8"


def test_trial_states_finished_and_open():
    assert {s for s in TrialStatus if s.is_finished()} == {TrialStatus.SUCCEEDED, TrialStatus.FAILED,
                                                            TrialStatus.PRUNED}
    assert {s for s in TrialStatus if s.is_open()} == {TrialStatus.PENDING, TrialStatus.RUNNING}
    assert {s for s in RunStatus if s.is_finished()} == {RunStatus.MET, RunStatus.EXHAUSTED, RunStatus.FAILED}


@pytest.mark.parametrize("reason, status, event", [
    (DoneReason.MET, RunStatus.MET, "success"),
    (DoneReason.BUDGET, RunStatus.EXHAUSTED, "budget-exhausted"),
    (DoneReason.TIME, RunStatus.EXHAUSTED, "budget-exhausted"),
    (DoneReason.PATIENCE, RunStatus.EXHAUSTED, "budget-exhausted"),
    (DoneReason.STRATEGY, RunStatus.EXHAUSTED, "budget-exhausted"),
    (DoneReason.TRIAL_FAILED, RunStatus.FAILED, "trial-failed"),
    (DoneReason.ERROR, RunStatus.FAILED, "pipeline-error"),
])
def test_each_done_reason_has_one_status_and_one_notification(reason, status, event):
    assert (reason.status, reason.event) == (status, event)
