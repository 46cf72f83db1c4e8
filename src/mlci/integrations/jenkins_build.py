"""What a Jenkins build says about a run: its result (green, yellow, red), its description line, and the
files its publishers pick up (the report, the best model, the metric trend, mlci's own mail body).

The result is the run oracle's verdict, never re-decided here: Outcome.status -> exit_code_for -> the
shell step's exit code, which the job's `unstable-return` (3) turns yellow.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from mlci.core.errors import EXIT_BELOW_THRESHOLD, EXIT_OK, EXIT_TRIAL_FAILED, UsageError
from mlci.core.store import Run, read_record
from mlci.orchestration.oracle import Outcome, RunOracle, exit_code_for

# The exit code the job scripts end with for a run whose budget is spent below the threshold; the shell
# builders declare it as `unstable-return`, so Jenkins marks the build UNSTABLE (yellow), not FAILURE.
UNSTABLE_RETURN = EXIT_BELOW_THRESHOLD
RESULT_OF_CODE = {EXIT_OK: "SUCCESS", UNSTABLE_RETURN: "UNSTABLE", EXIT_TRIAL_FAILED: "FAILURE"}
# The line the description-setter publisher reads (regexp "^mlci build: (.*)$" in jobs/templates.yaml).
DESCRIPTION_PREFIX = "mlci build: "


@dataclass(frozen=True)
class BuildResult:
    exit_code: int  # 0 SUCCESS, 3 UNSTABLE (unstable-return), 5 FAILURE
    description: str  # "trial 3: accuracy 0.9120 < 0.95 (budget spent: max_trials (4) reached)"

    @property
    def result(self) -> str:
        return RESULT_OF_CODE.get(self.exit_code, "FAILURE")


def _trial_phrase(run: Run, outcome: Outcome, trial_number: int | None) -> str:
    """'trial 3: accuracy 0.9120 < 0.95' for the named trial, else for the best one so far."""
    objective = outcome.objective
    if trial_number is None:
        if outcome.best_trial is None:
            return f"no trial measured yet ({objective.metric} threshold {objective.threshold:g})"
        return f"best trial {outcome.best_trial}: {objective.compare(outcome.best_value)}"
    trial = run.trial(trial_number)
    if not trial.dir.is_dir():
        raise UsageError(f"run {run.id} has no trial {trial_number}",
                         hint=f"its trials are {', '.join(str(t.number) for t in run.trials()) or 'none yet'}")
    if trial.has_metrics():
        return f"trial {trial_number}: {objective.compare(RunOracle(run).check(trial_number).value)}"
    return f"trial {trial_number}: {trial.status()} ({objective.metric} threshold {objective.threshold:g})"


def build_result(run: Run, trial_number: int | None = None) -> BuildResult:
    """The build's result and description, from the oracle's verdict on the run as it stands now.

    Met -> 0; still going (below the threshold, budget left) -> 0 so the chain goes on; budget spent below
    the threshold -> 3 (UNSTABLE); the run failed (its trial cannot train, or mlci could not go on) -> 5.
    """
    outcome = RunOracle(run).outcome()
    phrase = _trial_phrase(run, outcome, trial_number)
    if not outcome.finished:
        return BuildResult(EXIT_OK, phrase)
    verdict = {"met": "threshold met", "exhausted": "budget spent", "failed": "run failed"}[str(outcome.status)]
    # a met run's message repeats the metric; the others say why the run ended
    note = f"{verdict}: {outcome.message}" if outcome.message and str(outcome.status) != "met" else verdict
    return BuildResult(exit_code_for(outcome.status), " ".join(f"{phrase} ({note})".split())[:300])


# ----------------------------------------------------------------------------- what the publishers pick up


def publish(run: Run, into: Path) -> list[Path]:
    """Copy what Jenkins publishes into the workspace (publishers read only the workspace):

    report.html + report.png (HTML Publisher), best/ model and metrics.json (archived, fingerprinted),
    trend.properties (Plot plugin: YVALUE = the best metric), notification.html and subject.txt
    (email-ext's body and subject: the mlci notification that announced the run's outcome). Returns the files written.
    """
    from mlci.integrations.report import write_report

    if into.exists():
        shutil.rmtree(into)
    into.mkdir(parents=True)
    write_report(run)
    written = []
    for name in ("report.html", "report.png"):
        if (run.dir / name).is_file():
            written.append(Path(shutil.copy2(run.dir / name, into / name)))
    if run.best_dir.is_dir():
        best = into / "best"
        shutil.copytree(run.best_dir, best, symlinks=False, ignore=shutil.ignore_patterns("checkpoints", "*.lock"))
        written += sorted(p for p in best.rglob("*") if p.is_file())
    outcome = RunOracle(run).outcome()
    if outcome.best_value is not None:
        from mlci.integrations.jenkins import write_properties  # the one properties writer

        trend = into / "trend.properties"
        write_properties(trend, {"YVALUE": outcome.best_value})
        written.append(trend)
    message = run.outbox / f"{outcome.event}.json"  # one message per event: the one announcing this outcome
    if outcome.event and message.is_file():
        from mlci.integrations.message import OutboxMessage

        record = read_record(message, OutboxMessage, what="outbox message",
                             fix="delete it and run `mlci notify` again to write it anew")
        for name, text in (("notification.html", record.html), ("subject.txt", record.subject + "\n")):
            (into / name).write_text(text, encoding="utf-8")
            written.append(into / name)
    return written
