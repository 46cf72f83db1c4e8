"""Git push triggers without clicking: a post-receive hook that notifies Jenkins (the git plugin's
/git/notifyCommit) or runs the embedded pipeline for the pushed commit, and `mlci watch`, which polls.

Pushes are handled one at a time per repository (a lock): a newer push waits for the older run.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Literal

from mlci.core.errors import RunnerError, UsageError
from mlci.integrations.fetch import _git
from mlci.core.store import Record, now_iso, read_record, write_json

HOOK_MARK = "# installed by `mlci hook install`"
ZERO_SHA = "0" * 40
Echo = Callable[[str], None]


class HookRun(Record):
    """One pushed commit handled by the hook or by watch ($MLCI_HOME/hooks/<commit>.json)."""

    repo: str
    ref: str
    commit: str
    state: Literal["queued", "running", "done", "failed"] = "queued"
    run_id: str | None = None
    exit_code: int | None = None
    log: str | None = None
    queued_at: str
    started_at: str | None = None
    finished_at: str | None = None


class WatchState(Record):
    """What `mlci watch` saw last ($MLCI_HOME/watch/<repo-key>.json)."""

    repo: str
    ref: str
    last_commit: str | None = None
    checked_at: str | None = None


@dataclass
class LocalOptions:
    """How a pushed commit is run by the embedded pipeline (`mlci fetch` + `mlci run`)."""

    home: Path
    model: str | None = None
    config: Path | None = None


# ----------------------------------------------------------------------------- git


def hooks_dir(repo: Path) -> Path:
    """The folder git runs this repository's hooks from (bare or not, core.hooksPath honoured)."""
    if not repo.is_dir():
        raise UsageError(f"{repo}: no such folder", hint="pass the path of the repository people push to")
    try:
        path = _git("rev-parse", "--git-path", "hooks", cwd=repo)
    except UsageError:
        raise UsageError(f"{repo}: not a git repository",
                         hint="pass the repository people push to (e.g. a bare repo made with `git init --bare`)") from None
    return (repo / path).resolve()


def repo_key(repo: str) -> str:
    name = Path(repo.rstrip("/")).name.removesuffix(".git") or "repo"
    return f"{name}-{hashlib.sha256(repo.encode()).hexdigest()[:8]}"


# ----------------------------------------------------------------------------- install


def install(repo: Path, *, jenkins_url: str | None = None, local: LocalOptions | None = None,
            repo_url: str | None = None, branch: str | None = None, token_file: Path | None = None,
            foreground: bool = False) -> Path:
    """Write REPO's post-receive hook; an existing hook not written by mlci is never overwritten."""
    if (jenkins_url is None) == (local is None):
        raise UsageError("choose what a push does: --jenkins URL (notify Jenkins) or --local (run the pipeline here)")
    repo = repo.resolve()
    target = hooks_dir(repo) / "post-receive"
    if target.exists() and HOOK_MARK not in target.read_text(encoding="utf-8", errors="replace"):
        raise UsageError(f"{target}: a post-receive hook exists and was not written by mlci",
                         hint="move it away, or call `mlci hook post-receive ...` from it yourself")
    args = ["hook", "post-receive", "--repo", str(repo)]
    if branch:
        args += ["--branch", branch]
    if jenkins_url is not None:
        _check_jenkins_url(jenkins_url)
        args += ["--jenkins", jenkins_url, "--repo-url", repo_url or str(repo)]
        if token_file is not None:
            args += ["--token-file", str(token_file.resolve())]
        what = f"notifies Jenkins at {jenkins_url}"
    else:
        args += ["--local", "--home", str(local.home.resolve())]
        if local.model:
            args += ["--model", local.model]
        if local.config:
            args += ["--config", str(local.config.resolve())]
        if foreground:
            args.append("--foreground")
        what = "runs the mlci pipeline for the pushed commit"
    # the hook runs the mlci that installed it, whatever PATH the git server has
    package_root = Path(__file__).resolve().parents[2]
    text = (f"#!/bin/sh\n{HOOK_MARK}: a push to this repository {what}.\n"
            "# Run `mlci hook install` again to change it. git gives the updated refs on stdin.\n"
            f"PYTHONPATH={shlex.quote(str(package_root))}${{PYTHONPATH:+:$PYTHONPATH}}\nexport PYTHONPATH\n"
            f"exec {shlex.quote(sys.executable)} -m mlci {' '.join(shlex.quote(a) for a in args)}\n")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(".post-receive.mlci-tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.chmod(0o755)
    os.replace(tmp, target)
    return target


# ----------------------------------------------------------------------------- post-receive


@dataclass
class Update:
    old: str
    new: str
    ref: str

    @property
    def branch(self) -> str | None:
        return self.ref.removeprefix("refs/heads/") if self.ref.startswith("refs/heads/") else None


def parse_updates(lines: str, branch: str | None = None) -> list[Update]:
    """post-receive's stdin: '<old> <new> <ref>' per line; keeps pushed branches, not deletions or tags."""
    updates = []
    for line in lines.splitlines():
        parts = line.split()
        if len(parts) != 3:
            continue
        update = Update(*parts)
        if update.new == ZERO_SHA or update.branch is None or (branch and update.branch != branch):
            continue
        updates.append(update)
    return updates


def _check_jenkins_url(jenkins_url: str) -> None:
    from mlci.core.config import check_http_url

    try:
        check_http_url(jenkins_url)
    except ValueError as exc:
        raise UsageError(f"--jenkins {jenkins_url!r}: not an http(s) URL (expected {exc})",
                         hint="e.g. --jenkins https://jenkins.example.com/") from None


def notify_jenkins(jenkins_url: str, repo_url: str, update: Update, token: str | None = None,
                   timeout: float = 10.0) -> str:
    """GET /git/notifyCommit: Jenkins builds the jobs whose git SCM polls this URL and branch."""
    _check_jenkins_url(jenkins_url)
    query = {"url": repo_url, "branches": update.branch, "sha1": update.new}
    if token:
        query["token"] = token
    url = jenkins_url.rstrip("/") + "/git/notifyCommit?" + urllib.parse.urlencode(query)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.read().decode("utf-8", errors="replace").strip()
    except (urllib.error.URLError, OSError) as exc:
        raise RunnerError(f"{jenkins_url}: /git/notifyCommit for {update.new[:12]} failed ({exc})",
                          hint="the push is stored; Jenkins' SCM polling still builds it, or check the URL "
                               "and the git plugin's notifyCommit token (--token-file)") from None


def read_token(token_file: Path | None) -> str | None:
    if token_file is None:
        return os.environ.get("MLCI_NOTIFY_COMMIT_TOKEN") or None
    try:
        return token_file.read_text(encoding="utf-8").strip() or None
    except OSError as exc:
        raise UsageError(f"{token_file}: cannot read the notifyCommit token ({exc.strerror})",
                         hint="make it readable by the user git runs hooks as") from None


def post_receive_jenkins(stdin: str, *, repo: Path, jenkins_url: str, repo_url: str, branch: str | None,
                         token_file: Path | None, echo: Echo) -> None:
    token = read_token(token_file)
    for update in parse_updates(stdin, branch):
        answer = notify_jenkins(jenkins_url, repo_url, update, token)
        echo(f"mlci: told Jenkins about {update.branch} {update.new[:12]}: {answer.splitlines()[0] if answer else 'ok'}")


def post_receive_local(stdin: str, *, repo: Path, options: LocalOptions, branch: str | None,
                       foreground: bool, echo: Echo) -> int:
    """Queue each pushed commit; in the background unless `foreground` (the pusher then waits)."""
    code = 0
    for update in parse_updates(stdin, branch):
        record = queue_commit(repo, update, options)
        if foreground:
            code = run_commit(repo, update.new, update.ref, options, echo=echo)
            continue
        log = Path(record.log)
        with open(log, "ab") as handle:
            subprocess.Popen([sys.executable, "-m", "mlci", *run_commit_args(repo, update, options)],
                             stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT,
                             start_new_session=True, cwd=str(options.home), env=child_env(options.home))
        echo(f"mlci: running the pipeline for {update.branch} {update.new[:12]} in the background; log: {log}")
    return code


def run_commit_args(repo: Path, update: Update, options: LocalOptions) -> list[str]:
    args = ["hook", "run-commit", "--repo", str(repo), "--commit", update.new, "--ref", update.ref,
            "--home", str(options.home)]
    if options.model:
        args += ["--model", options.model]
    if options.config:
        args += ["--config", str(options.config)]
    return args


# ----------------------------------------------------------------------------- running one commit


def record_path(home: Path, commit: str) -> Path:
    return home / "hooks" / f"{commit}.json"


def read_hook_run(home: Path, commit: str) -> HookRun:
    return read_record(record_path(home, commit), HookRun, what="hook run record",
                       fix="push the commit again, or run `mlci hook run-commit`")


def queue_commit(repo: Path | str, update: Update, options: LocalOptions) -> HookRun:
    path = record_path(options.home, update.new)
    record = HookRun(repo=str(repo), ref=update.ref, commit=update.new, queued_at=now_iso(),
                     log=str(path.with_suffix(".log")))
    write_json(path, record)
    return record


@contextlib.contextmanager
def repo_lock(home: Path, repo: str) -> Iterator[None]:
    """One pipeline per repository at a time: a newer push waits until the older run is done."""
    path = home / "hooks" / f"{repo_key(repo)}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def child_env(home: Path) -> dict[str, str]:
    """The environment of the pipeline a hook starts: without git's GIT_DIR & co, which point at the hook's repo."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("GIT_")}
    env["MLCI_HOME"] = str(home)
    return env


def _mlci(args: list[str], *, capture: bool, home: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlci", *args], env=child_env(home), text=True,
                          stdout=subprocess.PIPE if capture else None)


def run_commit(repo: Path | str, commit: str, ref: str, options: LocalOptions, *, echo: Echo) -> int:
    """`mlci fetch` the commit into the run store, then `mlci run` it; returns run's exit code."""
    home = options.home
    path = record_path(home, commit)
    record = read_hook_run(home, commit) if path.exists() else HookRun(
        repo=str(repo), ref=ref, commit=commit, queued_at=now_iso())
    with repo_lock(home, str(repo)):
        record = record.model_copy(update={"state": "running", "started_at": now_iso()})
        write_json(path, record)
        fetch_args = ["fetch", str(repo), "--ref", commit, "--home", str(home)]
        if options.model:
            fetch_args += ["--model", options.model]
        if options.config:
            fetch_args += ["--config", str(options.config)]
        fetched = _mlci(fetch_args, capture=True, home=home)
        values = dict(line.split("=", 1) for line in (fetched.stdout or "").splitlines() if "=" in line)
        if fetched.returncode != 0 or "MODEL" not in values:
            code = fetched.returncode or 1
        else:
            echo(f"mlci: run {values.get('RUN_ID')} for {ref} {commit[:12]}")
            record = record.model_copy(update={"run_id": values.get("RUN_ID")})
            write_json(path, record)
            run_args = ["run", values["MODEL"], "--commit", commit, "--home", str(home), "--quiet"]
            if options.config:
                run_args += ["--config", str(options.config)]
            code = _mlci(run_args, capture=False, home=home).returncode
        # exit 3 (budget spent below the threshold) is a finished run, not a broken one
        state = "done" if code in (0, 3) else "failed"
        write_json(path, record.model_copy(update={"state": state, "exit_code": code, "finished_at": now_iso()}))
    return code


# ----------------------------------------------------------------------------- watch


def remote_head(repo: str, branch: str | None) -> str | None:
    ref = f"refs/heads/{branch}" if branch else "HEAD"
    for line in _git("ls-remote", repo, ref).splitlines():
        sha, _, name = line.partition("\t")
        if name == ref:
            return sha
    if branch:
        raise UsageError(f"{repo}: branch '{branch}' not found", hint="pass an existing branch to --branch")
    return None


def watch(repo: str, *, options: LocalOptions, branch: str | None = None, interval: float = 60.0,
          once: bool = False, echo: Echo) -> int:
    """Poll REPO like Jenkins' SCM polling; run the pipeline on each new head commit (the latest only)."""
    if interval <= 0:
        raise UsageError(f"--interval {interval:g}: must be more than 0 seconds", hint="e.g. --interval 60")
    local = Path(repo)
    source = str(local.resolve()) if local.exists() else repo
    ref = f"refs/heads/{branch}" if branch else "HEAD"
    state_path = options.home / "watch" / f"{repo_key(source)}.json"
    state = read_record(state_path, WatchState, what="watch state", fix="delete it to start watching afresh") \
        if state_path.exists() else WatchState(repo=source, ref=ref)
    code = 0
    while True:
        head = remote_head(source, branch)
        state = state.model_copy(update={"checked_at": now_iso()})
        if head and head != state.last_commit:
            echo(f"mlci: new commit {head[:12]} on {ref} of {source}")
            queue_commit(source, Update(state.last_commit or ZERO_SHA, head, ref), options)
            code = run_commit(source, head, ref, options, echo=echo)
            # a broken commit is not retried forever: like SCM polling, the next push triggers again
            state = state.model_copy(update={"last_commit": head})
        elif once:
            echo(f"mlci: no new commit on {ref} of {source} (last {(state.last_commit or 'none')[:12]})")
        write_json(state_path, state)
        if once:
            return code
        time.sleep(interval)
