"""Jenkins and git: `mlci jenkins` (render/deploy the jobs, trigger, status, decide), `mlci hook`
(the post-receive hook) and `mlci watch` (SCM polling without Jenkins).
"""
from __future__ import annotations

import sys
from pathlib import Path

import click

from mlci.cli._common import SEE_EXIT_HELP, FiniteFloat, _open, console, handle_errors, home_option, out, run_option


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


@click.group("jenkins", epilog=SEE_EXIT_HELP)
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
    """Create or update the six jobs and the view on $JENKINS_URL.

    The server's plugins are checked first: a missing required plugin is named (one line each) and
    nothing is created (exit 2)."""
    from mlci.integrations import jenkins

    credentials = jenkins.credentials_from_env()
    done = jenkins.deploy(credentials, jobs_dir=jobs_dir, values=project_values_from(options, settings),
                          echo=lambda line: click.echo(f"mlci: {line}", err=True))
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
    """Last build of each of the six jobs on $JENKINS_URL: its result and its line (trial, metric, threshold)."""
    import dataclasses
    import json

    from rich.table import Table

    from mlci.integrations import jenkins

    found = jenkins.status(jenkins.credentials_from_env(), prefix=prefix)
    if as_json:
        click.echo(json.dumps([dataclasses.asdict(item) for item in found], indent=2))
        return
    table = Table("job", "state", "last build", "result", "trial / metric")
    for item in found:
        state = "missing" if not item.exists else ("queued" if item.in_queue else item.color or "")
        result = "building" if item.building else (item.result or "")
        table.add_row(item.job, state, str(item.last_build or ""), result, item.description or "")
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


@jenkins_group.command("result")
@run_option
@click.option("--trial", "trial_number", type=int, help="The trial this build handled [default: the best so far].")
@click.option("--publish", "publish_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Also copy the report, best model, trend and mail body here for the job's publishers.")
@home_option
@handle_errors
def jenkins_result(run_id: str, trial_number: int | None, publish_dir: Path | None, home: Path | None) -> None:
    """A job's last step: print the build's description line and exit with its result, the run oracle's verdict.

    \b
    Exit 0 SUCCESS: threshold met, or below it with budget left (the chain goes on)
    Exit 3 UNSTABLE: budget spent below the threshold (the jobs' unstable-return)
    Exit 5 FAILURE:  the run failed (its trial cannot train, or mlci could not go on)"""
    from mlci.integrations import jenkins_build

    _, run = _open(home, run_id)
    if publish_dir is not None:
        for path in jenkins_build.publish(run, publish_dir):
            click.echo(f"published {path}", err=True)
    result = jenkins_build.build_result(run, trial_number)
    click.echo(f"{jenkins_build.DESCRIPTION_PREFIX}{result.description}")
    click.echo(f"mlci: build result {result.result} (exit {result.exit_code})", err=True)
    sys.exit(result.exit_code)


@click.group("hook", epilog=SEE_EXIT_HELP)
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


@click.command("watch", epilog=SEE_EXIT_HELP)
@click.argument("repo")
@click.option("--branch", help="Branch to follow [default: the repository's HEAD].")
@click.option("--interval", type=FiniteFloat(), default=60.0, show_default=True, help="Seconds between polls.")
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
