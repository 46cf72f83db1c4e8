"""The pipeline's commands: `mlci run` (the whole chain in one process) and the steps Jenkins' jobs
run one by one (fetch, launch, wait, check, tweak, status), plus the training harness (train).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from mlci.cli._common import (SEE_EXIT_HELP, TRIAL_NUMBER, FiniteFloat, _install_signal_handlers, _open, _properties,
                              console, handle_errors, home_option, out, properties_option, run_option, store_for)
from mlci.cli.results import trial_table
from mlci.core.errors import MlciError
from mlci.core.states import TrialStatus


class RichEvents:
    """Draws the pipeline's progress: one bar for trials, one for the epochs of the current trial."""

    def __init__(self, max_trials: int, quiet: bool = False):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.quiet = quiet
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=console,
                                 transient=False, disable=quiet or not console.is_terminal)
        self.trials_task = self.progress.add_task("trials", total=max_trials, info="")
        self.epoch_task = None

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        self.progress.__exit__(*exc)

    def notice(self, text: str) -> None:
        from rich.markup import escape

        self.progress.console.print(f"[dim]mlci:[/dim] {escape(text)}", soft_wrap=True)  # one line: grep, copy

    def trial_started(self, trial, hparams) -> None:
        change = f" ({hparams.change})" if hparams.change else ""
        self.progress.console.print(f"trial {trial.number}: {hparams.proposed_by}{change}", soft_wrap=True)
        if self.epoch_task is not None:
            self.progress.remove_task(self.epoch_task)
            self.epoch_task = None
        # A model without epochs (KNN, a forest) gets no epoch bar: it would stand at "0/?" until the end.
        epochs = hparams.hparams.get("epochs")
        if isinstance(epochs, int) and epochs > 0:
            self.epoch_task = self.progress.add_task(f"  trial {trial.number} epochs", total=epochs, info="")

    def trial_progress(self, trial, epoch, epochs, value) -> None:
        if not epochs:
            return  # the heartbeat of a fit without epochs
        if self.epoch_task is None:  # a script's epochs are known once its fit starts
            self.epoch_task = self.progress.add_task(f"  trial {trial.number} epochs", total=epochs, info="")
        info = f"val {value:.4f}" if isinstance(value, float) else ""
        self.progress.update(self.epoch_task, completed=epoch, total=epochs, info=info)

    def trial_finished(self, trial, metrics, state) -> None:
        self.progress.advance(self.trials_task)
        if metrics is not None:
            epochs = f"{metrics.epochs_done} epoch{'s' if metrics.epochs_done != 1 else ''}, " if metrics.history else ""
            self.progress.console.print(f"  [bold]{metrics.metric} {metrics.value:.4f}[/bold] "
                                        f"({epochs}fit {metrics.train_seconds:.1f}s)")
        else:
            from rich.markup import escape

            self.progress.console.print(f"  [red]{escape(state.status)}[/red]: {escape(state.reason or '')}",
                                        soft_wrap=True)


@click.command(epilog=SEE_EXIT_HELP)
@click.argument("model_file", type=click.Path(path_type=Path))
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="mlci.toml to use [default: next to MODEL_FILE].")
@home_option
@click.option("--runner", type=click.Choice(["local", "docker", "auto"]), help="Where trials train [config: runner].")
@click.option("--strategy", help="How the next hyperparameters are proposed [config: strategy].")
@click.option("--threshold", type=float, help="Metric to reach [config: threshold].")
@click.option("--max-trials", type=int, help="Trial budget [config: max_trials].")
@click.option("--max-minutes", type=float, help="Time budget [config: max_minutes].")
@click.option("--dataset", help="mnist-sample | digits | mnist | module [config: dataset].")
@click.option("--seed", type=int, help="Random seed [config: seed].")
@click.option("--commit", help="Commit this model file comes from (keys the run).")
@click.option("--optimize", is_flag=True,
              help="Keep searching after the threshold is met, for the best within the budget [config: optimize].")
@click.option("--parallel", type=click.IntRange(1, 64), help="Trials training at once [config: parallel].")
@click.option("--workers", type=click.Choice(["warm", "daemon", "fresh"]),
              help="Local trials: forked from a worker of this run, from one kept between runs, or a process each "
                   "[config: workers].")
@click.option("--no-notify", is_flag=True, help="Do not send the outcome notification.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@handle_errors
def run(model_file, config_path, home, runner, strategy, threshold, max_trials, max_minutes, dataset, seed, commit,
        optimize, parallel, workers, no_notify, quiet):
    """Run the whole chain on MODEL_FILE: detect, train, check, tweak and retrain until the
    threshold is met or the budget is spent; then report and notify. Running it again
    continues the same run (same file content or commit)."""
    from mlci.core.config import load_config
    from mlci.orchestration.pipeline import run_pipeline

    _install_signal_handlers()
    overrides = {"runner": runner, "strategy": strategy, "threshold": threshold, "max_trials": max_trials,
                 "max_minutes": max_minutes, "dataset": dataset, "seed": seed, "optimize": optimize or None,
                 "parallel": parallel, "workers": workers}
    if not model_file.exists():
        from mlci.core.errors import UsageError

        raise UsageError(f"{model_file}: model file not found", hint="pass the path of your model's .py file")
    config, _ = load_config(model_file, config_path, overrides)
    with RichEvents(config.max_trials, quiet) as events:
        result = run_pipeline(model_file, store=store_for(home), config_path=config_path, overrides=overrides,
                              commit=commit, events=events, notify_outcome=not no_notify)
    out.print(trial_table(result.run))
    out.print(verdict_line(result.outcome))
    # Plain lines, never wrapped by the console: people copy these paths.
    click.echo(f"report: {(result.run.dir / 'report.html').resolve()}")
    click.echo(f"best model: {result.run.best_dir.resolve()}")
    sys.exit(result.exit_code)


def verdict_line(outcome) -> str:
    """The run's verdict once: the oracle's message already names the best trial when it met the threshold."""
    from rich.markup import escape

    verdict = {"met": "[bold green]threshold met[/bold green]",
               "exhausted": "[bold red]budget spent below the threshold[/bold red]"}.get(outcome.status,
                                                                                      escape(str(outcome.status)))
    message = escape(outcome.message or "")
    if outcome.best_trial is not None and message.startswith(f"trial {outcome.best_trial} reached"):
        return f"{verdict}: {message}"
    best = "—" if outcome.best_value is None else f"{outcome.best_value:.4f} (trial {outcome.best_trial})"
    return f"{verdict}: best {outcome.objective.metric} {best}" + (f"; {message}" if message else "")


@click.command(epilog=SEE_EXIT_HELP)
@click.option("--trial-dir", required=True, type=click.Path(file_okay=False, path_type=Path), help="The trial folder (holds hparams.json).")
@click.option("--model", "model_file", required=True, type=click.Path(path_type=Path), help="The model file.")
@handle_errors(os_errors=False)
def train(trial_dir, model_file):
    """The training harness: train one trial as its hparams.json says (what runs inside a container)."""
    from mlci.harness.train import finish_marker, record_crash, train_trial

    _install_signal_handlers()
    try:
        train_trial(trial_dir, model_file, echo=lambda text: click.echo(text))
    except MlciError as err:
        (Path(trial_dir) / "error.txt").write_text(err.one_line() + "\n", encoding="utf-8")
        finish_marker(Path(trial_dir), err.exit_code)
        raise
    except BaseException as exc:
        if isinstance(exc, Exception):  # not a signal's SystemExit/KeyboardInterrupt: those are no crash
            record_crash(Path(trial_dir), exc)
        finish_marker(Path(trial_dir), 1)
        raise
    finish_marker(Path(trial_dir), 0)
    # Everything is on disk (fsync'd); skip TensorFlow's slow interpreter teardown (about a second per trial).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


@click.command(epilog=SEE_EXIT_HELP)
@click.argument("source")
@click.option("--ref", help="Commit, branch or tag [default: HEAD].")
@click.option("--model", help="Model file inside the repository [default: detected].")
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="mlci.toml [default: next to the model].")
@click.option("--threshold", type=float, help="Metric to reach [config: threshold] (a Jenkins parameter).")
@click.option("--max-trials", type=int, help="Trial budget [config: max_trials].")
@click.option("--runner", type=click.Choice(["local", "docker", "auto"]), help="Where trials train [config: runner].")
@home_option
@properties_option
@handle_errors
def fetch(source, ref, model, config_path, threshold, max_trials, runner, home, properties):
    """Job 1: snapshot SOURCE (git URL or folder) at REF into the run store and create its run."""
    from mlci.integrations.fetch import fetch as fetch_code
    from mlci.orchestration.runs import prepare_run

    from mlci.integrations.jenkins import property_lines

    store = store_for(home)
    model_file, commit, snapshot = fetch_code(source, store=store, ref=ref, model=model)
    property_lines({"COMMIT": commit, "MODEL": model_file})  # a name that would break mlci.properties: refused now
    overrides = {"threshold": threshold, "max_trials": max_trials, "runner": runner}
    run, _ = prepare_run(model_file, store=store, config_path=config_path, commit=commit, overrides=overrides,
                         snapshot=snapshot, lock_timeout=30.0)  # a Jenkins step holds the lock for seconds
    _properties(properties, {"RUN_ID": run.id, "COMMIT": commit, "MODEL": model_file})


@click.command(epilog=SEE_EXIT_HELP)
@run_option
@home_option
@click.option("--runner", type=click.Choice(["local", "docker", "auto"]), help="[default: the run's config].")
@click.option("--wait", "wait_too", is_flag=True,
              help="Also wait for the trial to finish, streaming its output (each epoch and its metric, restarts).")
@properties_option
@handle_errors
def launch(run_id, home, runner, wait_too, properties):
    """Job 2: start the trial the run oracle names (trial 0, the baseline, first) in the matching runtime.

    A run that has ended launches nothing: one line, and the run's exit code (0 met, 3 budget spent, 5 failed)."""
    from mlci.orchestration.lifecycle import follow
    from mlci.orchestration.steps import launch_next

    _, run_ = _open(home, run_id)
    launched = launch_next(run_, runner, notice=lambda t: console.print(f"mlci: {t}", soft_wrap=True))
    if launched.trial is None:
        outcome = launched.outcome
        click.echo(f"run {run_id} has ended ({outcome.status}: {outcome.message}); nothing to launch", err=True)
        sys.exit(outcome.exit_code)
    trial = launched.trial
    _properties(properties, {"RUN_ID": run_id, "TRIAL": trial.number})
    if wait_too:
        with _trial_console(trial) as events:
            state = follow(run_, trial, launched.runner, launched.handle, run_.record().config, events)
        _trial_verdict(trial, state)


def _trial_console(trial):
    """The trial's log, streamed to stdout as it grows (plain lines unless stdout is a terminal)."""
    from mlci.cli.stream import LogFollower

    return LogFollower(trial.log_path, lambda line: click.echo(line), raw=sys.stdout.isatty())



def _trial_verdict(trial, state) -> None:
    """A finished trial in one line; a failed one is exit 5, or 6 without a metric (pruned is an outcome)."""
    from mlci.core.errors import trial_failure

    if state.status == TrialStatus.PRUNED:
        click.echo(f"trial {trial.number}: {state.reason}")
        return
    if state.status != TrialStatus.SUCCEEDED:
        raise trial_failure(f"trial {trial.number} failed: {state.reason}", state.exit_code,
                            hint=f"see {trial.log_path}")
    metrics = trial.metrics()
    click.echo(f"trial {trial.number}: {metrics.metric} {metrics.value:.4f}")


@click.command(epilog=SEE_EXIT_HELP)
@run_option
@click.option("--trial", "trial_number", type=TRIAL_NUMBER, help="[default: the latest trial].")
@click.option("--timeout", type=FiniteFloat(min=0, min_open=True), help="Give up waiting after this many seconds (exit 5).")
@click.option("--keep-going", is_flag=True,
              help="A failed trial that does not end the run exits 0: the run goes on to the next proposal, as "
                   "`mlci run` does (exit 5 only when the failure ends the run).")
@home_option
@handle_errors
def wait(run_id, trial_number, timeout, keep_going, home):
    """Job 3: wait for a trial to finish (restarting it from its checkpoint if it is killed), collect its metrics.

    The trial's output is streamed as it trains: each epoch with its metric, its own prints, restarts."""
    from mlci.core.errors import TrialError
    from mlci.orchestration.steps import trial_to_wait, wait_for

    _, run_ = _open(home, run_id)
    if timeout is not None:
        import signal as _signal

        def _timeout(signum, frame):
            raise TrialError(f"trial still running after {timeout:g}s", hint="wait again, or raise --timeout")

        _signal.signal(_signal.SIGALRM, _timeout)
        _signal.setitimer(_signal.ITIMER_REAL, timeout)
    with _trial_console(trial_to_wait(run_, trial_number)) as events:
        trial, state = wait_for(run_, trial_number, events)
    if timeout is not None:
        _signal.setitimer(_signal.ITIMER_REAL, 0)
    if keep_going and state.status == TrialStatus.FAILED and not run_.record().status.is_finished():
        click.echo(f"trial {trial.number} failed ({state.reason}); the run goes on to the next proposal", err=True)
        return
    _trial_verdict(trial, state)


@click.command(epilog=SEE_EXIT_HELP)
@run_option
@click.option("--trial", "trial_number", type=TRIAL_NUMBER, help="[default: the latest trial with metrics].")
@home_option
@handle_errors
def check(run_id, trial_number, home):
    """Job 4: compare a trial's metric with the threshold (exit 0 met, 3 below)."""
    from mlci.orchestration.steps import check_trial

    _, run_ = _open(home, run_id)
    result = check_trial(run_, trial_number)
    click.echo(result.line())
    sys.exit(0 if result.met else 3)


@click.command(epilog=SEE_EXIT_HELP)
@click.option("--run", "run_id", envvar="RUN_ID", help="Run id [env RUN_ID]; required unless --explain.")
@home_option
@properties_option
@click.option("--explain", "explain_file", type=click.Path(path_type=Path),
              help="List the knobs mlci can tweak in this script (file:line) and exit.")
@handle_errors
def tweak(run_id, home, properties, explain_file):
    """Job 4: write the next trial's hyperparameters (exit 3 when the budget is spent)."""
    from mlci.orchestration.oracle import Action
    from mlci.orchestration.steps import tweak_next
    from mlci.tuning.tweak import script_knobs

    if explain_file is not None:
        _explain(explain_file)
        return
    if not run_id:
        raise click.UsageError("Missing option '--run' (or set RUN_ID)")
    _, run_ = _open(home, run_id)
    step = tweak_next(run_)
    if step.action is Action.DONE:
        click.echo(f"no next trial: {step.message}")
        knobs = script_knobs(Path(run_.record().model_file))
        if knobs and step.reason == "strategy":
            click.echo(knobs)
        sys.exit(step.exit_code)
    trial = step.trial
    record = trial.hparams()
    click.echo(f"trial {trial.number}: {record.proposed_by}" + (f" ({record.change})" if record.change else ""))
    if (trial.dir / "model.diff").exists():  # a script: the rewrite it will train
        click.echo((trial.dir / "model.diff").read_text(encoding="utf-8").rstrip())
    _properties(properties, {"RUN_ID": run_id, "TRIAL": trial.number})


@click.command(epilog=SEE_EXIT_HELP)
@run_option
@home_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def status(run_id, home, as_json):
    """The state of a run: best trial, budget left, next trial (job 5 decides with it)."""
    import json as _json

    from mlci.orchestration.steps import status_facts

    _, run_ = _open(home, run_id)
    facts = status_facts(run_)
    if as_json:
        click.echo(_json.dumps(facts, indent=2))
    else:
        for key, value in facts.items():
            click.echo(f"{key}: {_plain(value)}")


def _plain(value) -> str:
    """A status value as a person reads it: yes/no and a dash, not Python's True and None."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _explain(path: Path) -> None:
    """`mlci tweak --explain FILE`: the knobs of a script (or a module's HPARAMS), one per line."""
    from mlci.core.errors import UsageError
    from mlci.source.rewrite import is_script, scan_file
    from mlci.tuning.tweak import module_defaults

    if not path.is_file():
        raise UsageError(f"{path}: not found", hint="pass the path of a model script")
    source = path.read_text(encoding="utf-8", errors="replace")
    if not is_script(source):
        click.echo(f"{path}: a model module (defines build_model); its hyperparameters are HPARAMS: "
                   f"{module_defaults(path) or '{}'}")
        return
    found = scan_file(path)
    if found.error:
        click.echo(f"{found.error}; mlci trains it unchanged and cannot tweak it")
        return
    lines = found.lines()
    click.echo(f"{path}: script mode; {len(found.hparams())} knob(s) mlci can tweak: "
               f"{', '.join(f'{k}={v!r}' for k, v in found.hparams().items()) or 'none'}")
    for line in lines:
        click.echo(f"  {line}")
