"""The command line: the only module that knows about the terminal.

Each command parses options, calls one function of the core, and turns MlciError into one
line on stderr and its documented exit code.
"""
from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import click
from rich.console import Console

from mlci import __version__
from mlci.core.errors import EXIT_CODES, EXIT_INTERRUPTED, MlciError
from mlci.core.store import RunStore

console = Console(stderr=True, highlight=False)
out = Console(highlight=False)

EXIT_HELP = "\b\nExit codes:\n" + "\n".join(f"  {code:>3}  {text}" for code, text in EXIT_CODES.items())


def handle_errors(func):
    """MlciError -> one line on stderr + its exit code; Ctrl-C -> 130; anything else is a bug."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except MlciError as err:
            click.echo(f"mlci: error: {err.one_line()}", err=True)
            sys.exit(err.exit_code)
        except KeyboardInterrupt:
            click.echo("mlci: interrupted; the run store is consistent, run the same command again to continue",
                       err=True)
            sys.exit(EXIT_INTERRUPTED)

    return wrapper


def home_option(func):
    return click.option("--home", type=click.Path(file_okay=False, path_type=Path), envvar="MLCI_HOME",
                        default=None, help="Run store folder [env MLCI_HOME; default ./.mlci].")(func)


def store_for(home: Path | None) -> RunStore:
    return RunStore(home)


@click.group(epilog=EXIT_HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mlci")
def main() -> None:
    """mlci: detect a model's kind, train it, check the metric, tweak and retrain until the
    threshold, notify, and heal crashed trials. `mlci run MODEL_FILE` does it all in one process."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # oneDNN reorders float sums: resumed runs must match


# ============================================================================ pipeline commands
# (run, train, check, tweak, launch, wait, history, report, fetch) live below this line.


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

        self.progress.console.print(f"[dim]mlci:[/dim] {escape(text)}")

    def trial_started(self, trial, hparams) -> None:
        change = f" ({hparams.change})" if hparams.change else ""
        self.progress.console.print(f"trial {trial.number}: {hparams.proposed_by}{change}")
        if self.epoch_task is not None:
            self.progress.remove_task(self.epoch_task)
        epochs = hparams.hparams.get("epochs")
        self.epoch_task = self.progress.add_task(f"  trial {trial.number} epochs",
                                                 total=epochs if isinstance(epochs, int) else None, info="")

    def trial_progress(self, trial, epoch, epochs, value) -> None:
        if self.epoch_task is not None:
            info = f"val {value:.4f}" if isinstance(value, float) else ""
            self.progress.update(self.epoch_task, completed=epoch, total=epochs or None, info=info)

    def trial_finished(self, trial, metrics, state) -> None:
        self.progress.advance(self.trials_task)
        if metrics is not None:
            self.progress.console.print(f"  [bold]{metrics.metric} {metrics.value:.4f}[/bold] "
                                        f"({metrics.epochs_done} epochs, fit {metrics.train_seconds:.1f}s)")
        else:
            from rich.markup import escape

            self.progress.console.print(f"  [red]{escape(state.status)}[/red]: {escape(state.reason or '')}")


def trial_table(run):
    from rich.table import Table

    from mlci.integrations.report import trial_rows

    record = run.record()
    metric = record.config.metric
    table = Table(title=f"{record.model_name} — run {run.id}", show_lines=False)
    for column in ("#", "proposed by", "change", metric, "epochs", "fit s", "status"):
        table.add_column(column, justify="right" if column in ("#", metric, "epochs", "fit s") else "left")
    for row in trial_rows(run):
        style = "bold green" if row.number == record.best_trial else None
        table.add_row(str(row.number), row.proposed_by, row.change or "", "—" if row.value is None else f"{row.value:.4f}",
                      "—" if row.epochs is None else str(row.epochs),
                      "—" if row.train_seconds is None else f"{row.train_seconds:.1f}",
                      row.status + (f" ({row.restarts} restarts)" if row.restarts else ""), style=style)
    return table


def _install_signal_handlers() -> None:
    """SIGTERM (Jenkins aborting a build) ends cleanly like Ctrl-C: the run store stays consistent."""
    import signal

    def _raise(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _raise)


@main.command(epilog=EXIT_HELP)
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
@click.option("--no-notify", is_flag=True, help="Do not send the outcome notification.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@handle_errors
def run(model_file, config_path, home, runner, strategy, threshold, max_trials, max_minutes, dataset, seed, commit,
        optimize, parallel, no_notify, quiet):
    """Run the whole chain on MODEL_FILE: detect, train, check, tweak and retrain until the
    threshold is met or the budget is spent; then report and notify. Running it again
    continues the same run (same file content or commit)."""
    from mlci.core.config import load_config
    from mlci.orchestration.pipeline import run_pipeline

    _install_signal_handlers()
    overrides = {"runner": runner, "strategy": strategy, "threshold": threshold, "max_trials": max_trials,
                 "max_minutes": max_minutes, "dataset": dataset, "seed": seed, "optimize": optimize or None,
                 "parallel": parallel}
    if not model_file.exists():
        from mlci.core.errors import UsageError

        raise UsageError(f"{model_file}: model file not found", hint="pass the path of your model's .py file")
    config, _ = load_config(model_file, config_path, overrides)
    with RichEvents(config.max_trials, quiet) as events:
        result = run_pipeline(model_file, store=store_for(home), config_path=config_path, overrides=overrides,
                              commit=commit, events=events, notify_outcome=not no_notify)
    out.print(trial_table(result.run))
    outcome = result.outcome
    verdict = {"met": "[bold green]threshold met[/bold green]",
               "exhausted": "[bold red]budget spent below the threshold[/bold red]"}.get(outcome.status, outcome.status)
    best = "—" if outcome.best_value is None else f"{outcome.best_value:.4f} (trial {outcome.best_trial})"
    out.print(f"{verdict}: best {outcome.objective.metric} {best}; {outcome.message}")
    out.print(f"report: {result.run.dir / 'report.html'}  best model: {result.run.best_dir}")
    sys.exit(result.exit_code)


@main.command(epilog=EXIT_HELP)
@click.option("--trial-dir", required=True, type=click.Path(file_okay=False, path_type=Path), help="The trial folder (holds hparams.json).")
@click.option("--model", "model_file", required=True, type=click.Path(path_type=Path), help="The model file.")
@handle_errors
def train(trial_dir, model_file):
    """The training harness: train one trial as its hparams.json says (what runs inside a container)."""
    from mlci.harness.train import finish_marker, train_trial

    _install_signal_handlers()
    try:
        train_trial(trial_dir, model_file, echo=lambda text: click.echo(text))
    except MlciError as err:
        (Path(trial_dir) / "error.txt").write_text(err.one_line() + "\n", encoding="utf-8")
        finish_marker(Path(trial_dir), err.exit_code)
        raise
    except BaseException:
        finish_marker(Path(trial_dir), 1)
        raise
    finish_marker(Path(trial_dir), 0)
    # Everything is on disk (fsync'd); skip TensorFlow's slow interpreter teardown (about a second per trial).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _properties(path: Path | None, values: dict) -> None:
    """KEY=VALUE lines on stdout, and in a file for Jenkins' parameterized trigger."""
    lines = [f"{key}={value}" for key, value in values.items() if value is not None]
    for line in lines:
        click.echo(line)
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")


run_option = click.option("--run", "run_id", required=True, envvar="RUN_ID", help="Run id [env RUN_ID].")
properties_option = click.option("--properties", type=click.Path(dir_okay=False, path_type=Path),
                                 help="Also append KEY=VALUE lines to this file (Jenkins parameterized trigger).")


@main.command(epilog=EXIT_HELP)
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

    store = store_for(home)
    model_file, commit = fetch_code(source, store=store, ref=ref, model=model)
    overrides = {"threshold": threshold, "max_trials": max_trials, "runner": runner}
    run, _ = prepare_run(model_file, store=store, config_path=config_path, commit=commit, overrides=overrides)
    _properties(properties, {"RUN_ID": run.id, "COMMIT": commit, "MODEL": model_file})


def _open(home, run_id):
    store = store_for(home)
    return store, store.run(run_id)


@main.command(epilog=EXIT_HELP)
@run_option
@home_option
@click.option("--runner", type=click.Choice(["local", "docker", "auto"]), help="[default: the run's config].")
@click.option("--wait", "wait_too", is_flag=True, help="Also wait for the trial to finish.")
@properties_option
@handle_errors
def launch(run_id, home, runner, wait_too, properties):
    """Job 2: start the trial the run oracle names (trial 0, the baseline, first) in the matching runtime.

    A run that has ended launches nothing: one line, and the run's exit code (0 met, 3 budget spent, 5 failed)."""
    from mlci.orchestration.lifecycle import follow
    from mlci.orchestration.steps import launch_next

    _, run_ = _open(home, run_id)
    launched = launch_next(run_, runner, notice=lambda t: console.print(f"mlci: {t}"))
    if launched.trial is None:
        outcome = launched.outcome
        click.echo(f"run {run_id} has ended ({outcome.status}: {outcome.message}); nothing to launch", err=True)
        sys.exit(outcome.exit_code)
    trial = launched.trial
    _properties(properties, {"RUN_ID": run_id, "TRIAL": trial.number})
    if wait_too:
        state = follow(run_, trial, launched.runner, launched.handle, run_.record().config)
        _trial_verdict(trial, state)


def _trial_verdict(trial, state) -> None:
    """A finished trial in one line; a failed one is exit 5 (pruned is an outcome: the study stopped it)."""
    from mlci.core.errors import TrialError
    from mlci.core.states import TrialStatus

    if state.status == TrialStatus.PRUNED:
        click.echo(f"trial {trial.number}: {state.reason}")
        return
    if state.status != TrialStatus.SUCCEEDED:
        raise TrialError(f"trial {trial.number} failed: {state.reason}", hint=f"see {trial.log_path}")
    metrics = trial.metrics()
    click.echo(f"trial {trial.number}: {metrics.metric} {metrics.value:.4f}")


@main.command(epilog=EXIT_HELP)
@run_option
@click.option("--trial", "trial_number", type=int, help="[default: the latest trial].")
@click.option("--timeout", type=float, help="Give up waiting after this many seconds (exit 5).")
@home_option
@handle_errors
def wait(run_id, trial_number, timeout, home):
    """Job 3: wait for a trial to finish (restarting it from its checkpoint if it is killed), collect its metrics."""
    from mlci.core.errors import TrialError
    from mlci.orchestration.steps import wait_for

    _, run_ = _open(home, run_id)
    if timeout is not None:
        import signal as _signal

        def _timeout(signum, frame):
            raise TrialError(f"trial still running after {timeout:g}s", hint="wait again, or raise --timeout")

        _signal.signal(_signal.SIGALRM, _timeout)
        _signal.setitimer(_signal.ITIMER_REAL, timeout)
    trial, state = wait_for(run_, trial_number)
    if timeout is not None:
        _signal.setitimer(_signal.ITIMER_REAL, 0)
    _trial_verdict(trial, state)


@main.command(epilog=EXIT_HELP)
@run_option
@click.option("--trial", "trial_number", type=int, help="[default: the latest trial with metrics].")
@home_option
@handle_errors
def check(run_id, trial_number, home):
    """Job 4: compare a trial's metric with the threshold (exit 0 met, 3 below)."""
    from mlci.orchestration.steps import check_trial

    _, run_ = _open(home, run_id)
    result = check_trial(run_, trial_number)
    click.echo(result.line())
    sys.exit(0 if result.met else 3)


@main.command(epilog=EXIT_HELP)
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


@main.command(epilog=EXIT_HELP)
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
            click.echo(f"{key}: {value}")


@main.command(epilog=EXIT_HELP)
@click.argument("run_id")
@home_option
@handle_errors
def history(run_id, home):
    """The trial table of a run."""
    _, run_ = _open(home, run_id)
    out.print(trial_table(run_))


@main.command(epilog=EXIT_HELP)
@run_option
@home_option
@handle_errors
def report(run_id, home):
    """(Re)write report.html and report.png of a run."""
    from mlci.integrations.report import write_report

    _, run_ = _open(home, run_id)
    png, page = write_report(run_)
    click.echo(f"{page}" + (f"\n{png}" if png else ""))


@main.command(name="runs", epilog=EXIT_HELP)
@home_option
@handle_errors
def list_runs(home):
    """The runs in the store, newest last."""
    from rich.table import Table

    table = Table()
    for column in ("run", "model", "status", "best", "trials", "commit"):
        table.add_column(column)
    for run_ in store_for(home).runs():
        record = run_.record()
        table.add_row(run_.id, record.model_name, record.status,
                      "—" if record.best_value is None else f"{record.best_value:.4f}", str(len(run_.trials())),
                      (record.commit or "")[:10])
    out.print(table)


# ============================================================================ scripts commands (issue 9)


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


# ============================================================================ detect commands (issue 3)

@main.command("detect", epilog="\b\nExit codes: 0 detected; 2 missing path or bad config; 4 unsupported, "
                               "binary or empty code (the message says how to map an image in mlci.toml).")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the detection as JSON (for scripts and Jenkins).")
@click.option("--config", "config_file", type=click.Path(path_type=Path), default=None,
              help="Config file [default: mlci.toml next to PATH].")
@handle_errors
def detect_command(path: Path, as_json: bool, config_file: Path | None) -> None:
    """Detect the framework (sklearn, keras, torch) and architecture (cnn, ann, rnn, classical) of
    PATH: a .py file, a notebook, or a folder (its entry file), and the image that trains it."""
    import json

    from mlci.core.config import load_config
    from mlci.source.detect import detect

    try:
        config = load_config(None, config_file)[0] if config_file else None
        detection = detect(path, config=config)
    except MlciError as err:
        if as_json:  # a script reading stdout gets an answer too; the one line still goes to stderr
            click.echo(json.dumps({"error": err.one_line(), "exit_code": err.exit_code}))
        raise
    if as_json:
        click.echo(json.dumps(detection.to_dict(), indent=2))
        return
    image = detection.image_name or f"(none: set [images] {detection.framework} = \"...\" in mlci.toml)"
    out.print(f"framework     {detection.framework}\narchitecture  {detection.architecture}\n"
              f"image         {image}\nentry         {detection.entry}\nmode          {detection.mode}"
              + ("\nreading       degraded (not valid Python 3; see the evidence)" if detection.fallback else "")
              + "\nevidence:", markup=False)
    for item in detection.evidence:
        where = f"{item.file}:{item.line}" if item.line else item.file
        out.print(f"  {where}  {item.why}" + (f"\n      {item.text}" if item.text else ""), markup=False,
                  soft_wrap=True)



# ============================================================================ notify commands (issue 7)


@main.command("notify", epilog="\b\nExit codes: 0 sent (or console only: no [notify] channel), 2 usage/config,\n"
                               "8 not delivered after the retries (kept in the outbox; `mlci notify --flush`).")
@click.option("--run", "run_id", metavar="ID", help="The run to announce (required unless --flush).")
@click.option("--event", type=click.Choice(["success", "budget-exhausted", "trial-failed", "pipeline-error"]),
              help="What to announce [default: from the run's status: met, exhausted, failed].")
@click.option("--trial", type=int, default=None, help="With --event trial-failed: which trial [default: the last failed].")
@click.option("--flush", is_flag=True, help="Send what is pending in the outbox (of --run, or of every run).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="A mlci.toml whose [notify] to use [default: the config stored with the run].")
@home_option
@handle_errors
def notify_command(run_id: str | None, event: str | None, trial: int | None, flush: bool,
                   config_file: Path | None, home: Path | None) -> None:
    """Announce a run's outcome by email (SMTP) and webhook, through the run's outbox/.

    Every message is written to runs/<id>/outbox/ first, then sent, then marked sent: the same
    event is never sent twice. The SMTP password comes only from MLCI_SMTP_PASSWORD."""
    from mlci.integrations import notify as notifying
    from mlci.core.config import load_config

    if not flush and not run_id:
        raise click.UsageError("pass --run ID (or --flush to send what is pending)")
    if flush and (event or trial is not None):
        raise click.UsageError("--flush sends what is pending; it takes no --event or --trial")
    store = store_for(home)
    run = store.run(run_id) if run_id else None
    config = load_config(None, config_file)[0].notify if config_file else None

    def echo(line: str) -> None:
        click.echo(line, err=True)

    if flush:
        result = notifying.flush(run or store, config=config, echo=echo)
    else:
        result = notifying.announce(run, config or notifying.run_config(run), echo=echo, event=event, trial=trial)
    for path in result.messages:
        click.echo(f"OUTBOX={path}")


# ============================================================================ docker / images commands (issue 5)


@main.group("images")
def images_group() -> None:
    """The training images: one per framework (sklearn, keras) on mlci/base, built from dockerfiles/."""


@images_group.command("build")
@click.argument("names", nargs=-1, type=click.Choice(["base", "sklearn", "keras"]))
@click.option("--base", "base_image", default=None, metavar="IMAGE",
              help="Image to build on [env MLCI_BASE_IMAGE; default: mlci/bookworm-python:3.11 when "
                   "scripts/make-base-image.sh made it, else python:3.11-slim].")
@click.option("--wheelhouse", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder of wheels for the images' Python [env MLCI_WHEELHOUSE; default .cache/wheelhouse]; "
                   "missing wheels are downloaded into it.")
@click.option("--force", is_flag=True, help="Rebuild even when the content hash is unchanged.")
@click.option("--verbose", "-v", is_flag=True, help="Show the build output.")
@handle_errors
def images_build(names: tuple[str, ...], base_image: str | None, wheelhouse: Path | None, force: bool,
                 verbose: bool) -> None:
    """Build mlci/base, mlci/sklearn and mlci/keras (or NAMES); unchanged images are not rebuilt."""
    from mlci.runners.images import build_images

    def progress(line: str) -> None:
        if verbose or line.startswith(("mlci/", "downloading", "pulling")):
            console.print(line, markup=False)

    results = build_images(names or None, base=base_image, wheelhouse=wheelhouse, force=force, progress=progress)
    for result in results:
        what = f"built in {result.seconds:.0f}s" if result.built else "unchanged"
        out.print(f"{result.tag}  {result.image_id[7:19]}  {result.size / 1e6:.0f} MB  {what}", markup=False)


@images_group.command("list")
@handle_errors
def images_list() -> None:
    """The mlci images in the Docker engine, with framework, size and content hash."""
    from mlci.runners.images import list_images

    # Plain columns, not a rich table: scripts read this, and a table folds long tags on a narrow pipe.
    rows = [("IMAGE", "ID", "FRAMEWORK", "SIZE", "CREATED", "CONTENT HASH")]
    rows += [(info.tag, info.image_id[7:], info.framework or "-", f"{info.size / 1e6:.0f}MB", info.created,
              info.content_hash or "-") for info in list_images()]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        out.print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip(), markup=False,
                  soft_wrap=True)


# ============================================================================ monitor commands (issue 6)


class MonitorEcho:
    """What the monitor did, one line each on stderr (Jenkins keeps it in the build log)."""

    def notice(self, text: str) -> None:
        click.echo(f"mlci: {text}", err=True)

    def trial_died(self, trial, status, detected_at) -> None:
        click.echo(f"mlci: run {trial.run.id} trial {trial.number}: {status.reason or status.state}", err=True)

    def docker_event(self, event: dict) -> None:
        labels = (event.get("Actor") or {}).get("Attributes") or {}
        code = labels.get("exitCode")
        click.echo(f"mlci: docker: container of run {labels.get('mlci.run')} trial {labels.get('mlci.trial')}: "
                   f"{event.get('status') or event.get('Action')}" + (f" (exit code {code})" if code else ""), err=True)

    def trial_finished(self, trial, metrics, state) -> None:
        outcome = f"{metrics.metric} {metrics.value:.4f}" if metrics is not None else (state.reason or state.status)
        click.echo(f"mlci: run {trial.run.id} trial {trial.number} {state.status}: {outcome}", err=True)


@main.command("monitor", epilog="\b\nExit codes: 0 nothing failed (SIGTERM/SIGINT end the watch cleanly with 0),\n"
                                "2 usage, 5 a trial was closed as failed (crash loop), 130 --once interrupted.")
@click.option("--run", "run_id", metavar="ID", help="Watch this run only [default: every run in the store].")
@click.option("--once", is_flag=True, help="Check and act once, then exit (for a Jenkins job on a timer).")
@click.option("--poll", type=click.FloatRange(min=0.05, max=60), default=None,
              help="Seconds between checks when no event arrives [config: monitor.poll, 1].")
@click.option("--stale-after", type=click.FloatRange(min=2), default=None,
              help="A trial whose heartbeat is older is hung: killed and restarted [config: monitor.heartbeat_timeout].")
@home_option
@handle_errors
def monitor_command(run_id: str | None, once: bool, poll: float | None, stale_after: float | None,
                    home: Path | None) -> None:
    """Job 6: restart dead training processes and containers from their last checkpoint.

    Watches the running trials of every run (Docker's die/oom events, local processes, heartbeats);
    a killed, OOM-killed or crashed trial is relaunched and resumes from its checkpoint, up to
    max_restarts; a trial left running by a killed `mlci run` is resumed the same way."""
    import signal

    from mlci.orchestration.monitor import Monitor

    watcher = Monitor(store_for(home), run_id, events=MonitorEcho(), poll=poll, stale_after=stale_after)
    if not once:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: watcher.stop())
        click.echo(f"mlci: monitoring {'run ' + run_id if run_id else 'every run in ' + str(watcher.store.home)}"
                   "; stop with Ctrl-C or SIGTERM", err=True)
    result = watcher.watch(once=once)
    click.echo(f"watched {len(result.watched)} running trial(s) in {result.passes} pass(es): "
               f"{len(result.restarted)} restarted, {len(result.succeeded)} finished, {len(result.failed)} failed")
    sys.exit(result.exit_code)


# ============================================================================ jenkins / hook commands (issue 8)

_PROJECT_OPTIONS = (("git_url", "--git-url", "the model repository Jenkins checks out (job 1's git SCM)"),
                    ("branch", "--branch", "branch job 1 builds"),
                    ("credentials_id", "--credentials-id", "Jenkins credentials id for the repository"),
                    ("agent_label", "--agent-label", "label of the agents that run the jobs"),
                    ("mlci_home", "--mlci-home", "run store every agent sees (the jobs' MLCI_HOME)"),
                    ("threshold", "--threshold", "metric threshold passed to the jobs (empty: mlci.toml)"),
                    ("recipients", "--recipients", "email-ext recipients of job 5"))


def project_options(func):
    """--git-url ... --recipients and --set KEY=VALUE: the values of jobs/project.yaml to replace."""
    for dest, flag, text in reversed(_PROJECT_OPTIONS):
        func = click.option(flag, dest, default=None, help=f"{text} [default: jobs/project.yaml].")(func)
    func = click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
                        help="any other parameter of jobs/project.yaml, e.g. --set poll-schedule='H/2 * * * *'.")(func)
    return click.option("--jobs", "jobs_dir", type=click.Path(file_okay=False, exists=True, path_type=Path),
                        default=None, help="jobs/ folder to render [default: the one shipped with mlci].")(func)


def project_values_from(options: dict, settings: tuple[str, ...]) -> dict[str, str]:
    values = {flag[2:]: options[dest] for dest, flag, _ in _PROJECT_OPTIONS if options.get(dest) is not None}
    for item in settings:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.UsageError(f"--set {item!r}: expected KEY=VALUE, e.g. --set branch=main")
        values[key.strip()] = value
    return values


@main.group("jenkins", epilog=EXIT_HELP)
def jenkins_group() -> None:
    """The six Jenkins jobs and the pipeline view (Jenkins Job Builder), and their builds.

    deploy/trigger/status read JENKINS_URL, JENKINS_USER and JENKINS_API_TOKEN from the environment."""


@jenkins_group.command("render")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("out/jenkins"),
              show_default=True, help="Folder for <job>.xml and <view>.xml.")
@project_options
@handle_errors
def jenkins_render(out_dir: Path, jobs_dir: Path | None, settings: tuple[str, ...], **options) -> None:
    """Render the jobs and the view to config.xml files, offline (like `jenkins-jobs test`)."""
    from mlci.integrations import jenkins

    rendered = jenkins.render(out_dir, jobs_dir=jobs_dir, values=project_values_from(options, settings))
    for name, path in {**rendered.jobs, **rendered.views}.items():
        out.print(f"{name}\t{path}")


@jenkins_group.command("deploy")
@project_options
@handle_errors
def jenkins_deploy(jobs_dir: Path | None, settings: tuple[str, ...], **options) -> None:
    """Create or update the six jobs and the view on $JENKINS_URL."""
    from mlci.integrations import jenkins

    credentials = jenkins.credentials_from_env()
    done = jenkins.deploy(credentials, jobs_dir=jobs_dir, values=project_values_from(options, settings))
    out.print(f"deployed {len(done.jobs)} jobs and {len(done.views)} view(s) to {credentials.url}: "
              + ", ".join(done.jobs + done.views))


@jenkins_group.command("trigger")
@click.option("--job", default="mlci-1-fetch", show_default=True, help="Job to build.")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE", help="Build parameter (repeatable).")
@handle_errors
def jenkins_trigger(job: str, params: tuple[str, ...]) -> None:
    """Queue a build (buildWithParameters) on $JENKINS_URL; prints QUEUE_ID=<n>."""
    from mlci.integrations import jenkins

    parameters = {}
    for item in params:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.UsageError(f"--param {item!r}: expected KEY=VALUE, e.g. --param RUN_ID=mnist-0123")
        parameters[key] = value
    queue_id = jenkins.trigger(jenkins.credentials_from_env(), job=job, parameters=parameters)
    out.print(f"QUEUE_ID={queue_id}")


@jenkins_group.command("status")
@click.option("--prefix", default="mlci", show_default=True, help="Project name the job names start with.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@handle_errors
def jenkins_status(prefix: str, as_json: bool) -> None:
    """Last build of each of the six jobs on $JENKINS_URL."""
    import dataclasses
    import json

    from rich.table import Table

    from mlci.integrations import jenkins

    found = jenkins.status(jenkins.credentials_from_env(), prefix=prefix)
    if as_json:
        click.echo(json.dumps([dataclasses.asdict(item) for item in found], indent=2))
        return
    table = Table("job", "state", "last build", "result")
    for item in found:
        state = "missing" if not item.exists else ("queued" if item.in_queue else item.color or "")
        result = "building" if item.building else (item.result or "")
        table.add_row(item.job, state, str(item.last_build or ""), result)
    out.print(table)


@jenkins_group.command("decide")
@click.argument("status_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--retrain", "retrain_file", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Properties file written only when the run should train again (job 5 -> job 2).")
@handle_errors
def jenkins_decide(status_file: Path, retrain_file: Path) -> None:
    """Job 5: from `mlci status --json` output, retrain (write --retrain) or print the notify event."""
    from mlci.integrations import jenkins

    decision = jenkins.decide_file(status_file, retrain_file)
    console.print(f"mlci: {decision.action}: {decision.reason}")
    if decision.event:
        click.echo(decision.event)



@main.group("hook", epilog=EXIT_HELP)
def hook_group() -> None:
    """Git push triggers: a post-receive hook that notifies Jenkins or runs the pipeline here."""


def _local_options(home: Path | None, model: str | None, config: Path | None):
    from mlci.integrations.hook import LocalOptions
    from mlci.core.store import default_home

    return LocalOptions(home=(home or default_home()).resolve(), model=model, config=config)


@hook_group.command("install")
@click.argument("repo_path", type=click.Path(path_type=Path))
@click.option("--jenkins", "jenkins_url", metavar="URL", help="Notify this Jenkins (/git/notifyCommit) on each push.")
@click.option("--local", "local", is_flag=True, help="Run the embedded pipeline here for each pushed commit.")
@click.option("--repo-url", help="The URL Jenkins' job checks out (--jenkins) [default: REPO_PATH].")
@click.option("--token-file", type=click.Path(dir_okay=False, path_type=Path),
              help="File holding the git plugin's notifyCommit token, read at each push [default: env "
                   "MLCI_NOTIFY_COMMIT_TOKEN].")
@click.option("--branch", help="Only pushes to this branch [default: every branch].")
@click.option("--model", help="Model file inside the repository (--local) [default: detected].")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), help="mlci.toml (--local).")
@click.option("--foreground", is_flag=True, help="--local: the push waits for the run (default: in the background).")
@home_option
@handle_errors
def hook_install(repo_path, jenkins_url, local, repo_url, token_file, branch, model, config_path, foreground, home):
    """Write REPO_PATH's post-receive hook: a push notifies Jenkins or (--local) runs the pipeline.

    Pushes to one repository are run one at a time: a newer push waits for the older run."""
    from mlci.integrations.hook import install

    target = install(repo_path, jenkins_url=jenkins_url, local=_local_options(home, model, config_path) if local else None,
                     repo_url=repo_url, branch=branch, token_file=token_file, foreground=foreground)
    out.print(f"installed {target}")


@hook_group.command("post-receive")
@click.option("--repo", "repo", required=True, type=click.Path(path_type=Path))
@click.option("--jenkins", "jenkins_url")
@click.option("--repo-url")
@click.option("--token-file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--local", "local", is_flag=True)
@click.option("--branch")
@click.option("--model")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--foreground", is_flag=True)
@home_option
@handle_errors
def hook_post_receive(repo, jenkins_url, repo_url, token_file, local, branch, model, config_path, foreground, home):
    """What the installed hook runs (reads git's '<old> <new> <ref>' lines on stdin)."""
    from mlci.integrations.hook import post_receive_jenkins, post_receive_local

    stdin = sys.stdin.read()
    echo = lambda text: click.echo(text, err=True)  # noqa: E731  (git shows it to the pusher as remote: ...)
    if jenkins_url:
        post_receive_jenkins(stdin, repo=repo, jenkins_url=jenkins_url, repo_url=repo_url or str(repo),
                             branch=branch, token_file=token_file, echo=echo)
    elif local:
        sys.exit(post_receive_local(stdin, repo=repo, options=_local_options(home, model, config_path), branch=branch,
                                    foreground=foreground, echo=echo))
    else:
        raise click.UsageError("pass --jenkins URL or --local")


@hook_group.command("run-commit", hidden=True)
@click.option("--repo", required=True)
@click.option("--commit", required=True)
@click.option("--ref", default="HEAD")
@click.option("--model")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path))
@home_option
@handle_errors
def hook_run_commit(repo, commit, ref, model, config_path, home):
    """Fetch and run one pushed commit (what the hook starts in the background)."""
    from mlci.integrations.hook import run_commit

    sys.exit(run_commit(repo, commit, ref, _local_options(home, model, config_path),
                        echo=lambda text: click.echo(text, err=True)))


@main.command("watch", epilog=EXIT_HELP)
@click.argument("repo")
@click.option("--branch", help="Branch to follow [default: the repository's HEAD].")
@click.option("--interval", type=float, default=60.0, show_default=True, help="Seconds between polls.")
@click.option("--once", is_flag=True, help="Poll once, run a new commit if there is one, and exit with its code.")
@click.option("--model", help="Model file inside the repository [default: detected].")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), help="mlci.toml to use.")
@home_option
@handle_errors
def watch_command(repo, branch, interval, once, model, config_path, home):
    """Poll REPO (path or URL) for new commits, like Jenkins' SCM polling, and run the pipeline on each."""
    from mlci.integrations.hook import watch

    sys.exit(watch(repo, options=_local_options(home, model, config_path), branch=branch, interval=interval,
                   once=once, echo=lambda text: console.print(text, markup=False)))


# ============================================================================ end of commands
