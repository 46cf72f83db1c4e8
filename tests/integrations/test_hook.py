"""Git push triggers on real repositories: the post-receive hook notifying Jenkins (a stand-in server)
or running the pipeline for the pushed commit, two quick pushes, and `mlci watch` polling."""
from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from jenkins_standin import running
from mlci.cli import main
from mlci.integrations.hook import HOOK_MARK, ZERO_SHA, parse_updates, read_hook_run
from mlci.core.store import RunStore

MODEL = '''"""A tiny scikit-learn model module for the hook tests."""
from sklearn.neighbors import KNeighborsClassifier

HPARAMS = {"n_neighbors": 3}


def build_model(hp):
    return KNeighborsClassifier(n_neighbors=hp.get("n_neighbors", 3))
'''
CONFIG = 'dataset = "digits"\nrunner = "local"\nthreshold = 0.8\nmax_trials = 2\n'


def git(*args: str, cwd: Path) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture
def repos(tmp_path, monkeypatch):
    """A bare repository people push to and a clone with one commit of a model, not pushed yet."""
    for key in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{key}_NAME", "Test")
        monkeypatch.setenv(f"GIT_{key}_EMAIL", "test@example.com")
    bare = tmp_path / "models.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    clone = tmp_path / "work"
    subprocess.run(["git", "clone", "-q", str(bare), str(clone)], check=True, capture_output=True)
    git("checkout", "-q", "-b", "main", cwd=clone)
    (clone / "model.py").write_text(MODEL)
    (clone / "mlci.toml").write_text(CONFIG)
    git("add", ".", cwd=clone)
    git("commit", "-q", "-m", "model", cwd=clone)
    return bare, clone


def push(clone: Path, *refs: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "push", "origin", *(refs or ("main",))], cwd=clone, capture_output=True, text=True)


def commit(clone: Path, message: str) -> str:
    (clone / "notes.txt").write_text(message)
    git("add", ".", cwd=clone)
    git("commit", "-q", "-m", message, cwd=clone)
    return git("rev-parse", "HEAD", cwd=clone)


def install(*args: str):
    return CliRunner().invoke(main, ["hook", "install", *args])


# ----------------------------------------------------------------------------- --jenkins


def test_push_calls_notify_commit(repos, tmp_path):
    """The HTTP server stands in for Jenkins (it cannot be downloaded here): it records notifyCommit."""
    bare, clone = repos
    token = tmp_path / "notify-token"
    token.write_text("s3cret-token\n")
    with running() as server:
        result = install(str(bare), "--jenkins", server.url, "--repo-url", "https://git.example.com/models.git",
                         "--token-file", str(token))
        assert result.exit_code == 0, result.output
        hook = bare / "hooks" / "post-receive"
        assert HOOK_MARK in hook.read_text() and "s3cret" not in hook.read_text()
        sha = git("rev-parse", "HEAD", cwd=clone)
        pushed = push(clone)
        assert pushed.returncode == 0, pushed.stderr
        assert "remote: mlci: told Jenkins about main " + sha[:12] in pushed.stderr
        git("tag", "v1", cwd=clone)
        assert push(clone, "v1").returncode == 0  # a tag is not a branch to build
        calls = server.calls("GET", "/git/notifyCommit")
    assert len(calls) == 1
    assert calls[0].query == {"url": ["https://git.example.com/models.git"], "branches": ["main"],
                              "sha1": [sha], "token": ["s3cret-token"]}


def test_push_still_succeeds_when_jenkins_is_down(repos):
    """The HTTP server stands in for Jenkins (it cannot be downloaded here); here it is stopped."""
    bare, clone = repos
    with running() as server:
        url = server.url
    assert install(str(bare), "--jenkins", url).exit_code == 0
    pushed = push(clone)
    assert pushed.returncode == 0
    assert "/git/notifyCommit for" in pushed.stderr and "SCM polling still builds it" in pushed.stderr
    assert git("rev-parse", "main", cwd=bare) == git("rev-parse", "HEAD", cwd=clone)


def test_parse_updates_keeps_pushed_branches():
    a, b = "a" * 40, "b" * 40
    lines = f"{a} {b} refs/heads/main\n{ZERO_SHA} {b} refs/heads/dev\n{a} {ZERO_SHA} refs/heads/old\n" \
            f"{ZERO_SHA} {a} refs/tags/v1\nnonsense\n"
    assert [(u.branch, u.new) for u in parse_updates(lines)] == [("main", b), ("dev", b)]
    assert [u.branch for u in parse_updates(lines, branch="dev")] == ["dev"]


def test_install_needs_one_of_jenkins_or_local(repos):
    bare, _ = repos
    for args in ([], ["--local", "--jenkins", "http://127.0.0.1:9/"]):
        result = install(str(bare), *args)
        assert result.exit_code == 2
        assert "choose what a push does: --jenkins URL (notify Jenkins) or --local" in result.output


def test_install_rejects_a_folder_that_is_not_a_repository(tmp_path):
    result = install(str(tmp_path), "--local")
    assert result.exit_code == 2
    assert f"{tmp_path}: not a git repository; pass the repository people push to" in result.output


def test_install_rejects_a_jenkins_url_without_scheme(repos):
    bare, _ = repos
    result = install(str(bare), "--jenkins", "jenkins.example.com")
    assert result.exit_code == 2
    assert "--jenkins 'jenkins.example.com': not an http(s) URL" in result.output


def test_install_keeps_a_foreign_hook_and_replaces_its_own(repos, tmp_path):
    bare, _ = repos
    hook = bare / "hooks" / "post-receive"
    hook.write_text("#!/bin/sh\necho deploy the website\n")
    result = install(str(bare), "--local", "--home", str(tmp_path / "home"))
    assert result.exit_code == 2
    assert f"{hook}: a post-receive hook exists and was not written by mlci" in result.output
    assert "deploy the website" in hook.read_text()
    hook.unlink()
    assert install(str(bare), "--local", "--home", str(tmp_path / "home")).exit_code == 0
    assert install(str(bare), "--jenkins", "http://127.0.0.1:9/").exit_code == 0
    assert "--jenkins" in hook.read_text() and "--local" not in hook.read_text()


def test_install_into_a_non_bare_repository(repos, tmp_path):
    _, clone = repos
    result = install(str(clone), "--local", "--home", str(tmp_path / "home"))
    assert result.exit_code == 0, result.output
    assert (clone / ".git" / "hooks" / "post-receive").stat().st_mode & 0o111


# ----------------------------------------------------------------------------- --local (real training)


def finished_runs(home: Path) -> dict[str, dict]:
    store = RunStore(home)
    return {run.record().commit: json.loads(run.record_path.read_text()) for run in store.runs()}


def wait_for(home: Path, commits: list[str], timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        paths = [home / "hooks" / f"{c}.json" for c in commits]
        if all(p.exists() and read_hook_run(home, c).state in ("done", "failed") for p, c in zip(paths, commits)):
            return
        time.sleep(0.5)
    logs = {c: (home / "hooks" / f"{c}.log").read_text()[-1500:] for c in commits if (home / "hooks" / f"{c}.log").exists()}
    pytest.fail(f"hook runs did not finish: {logs}")


@pytest.mark.slow
def test_push_runs_the_pipeline_for_the_pushed_commit(repos, tmp_path):
    bare, clone = repos
    home = tmp_path / "home"
    assert install(str(bare), "--local", "--foreground", "--model", "model.py", "--home", str(home)).exit_code == 0
    sha = git("rev-parse", "HEAD", cwd=clone)
    pushed = push(clone)
    assert pushed.returncode == 0, pushed.stderr
    record = read_hook_run(home, sha)
    assert (record.state, record.exit_code, record.ref) == ("done", 0, "refs/heads/main"), pushed.stderr[-2000:]
    run = RunStore(home).run(record.run_id)
    assert run.record().commit == sha and run.record().status == "met"
    assert (run.best_dir / "metrics.json").exists() and (run.best_dir / "model.joblib").exists()


@pytest.mark.slow
def test_two_quick_pushes_run_one_after_the_other(repos, tmp_path):
    """The newer push waits for the older run (a lock per repository), so neither run is corrupted."""
    bare, clone = repos
    home = tmp_path / "home"
    assert install(str(bare), "--local", "--model", "model.py", "--home", str(home)).exit_code == 0
    first = git("rev-parse", "HEAD", cwd=clone)
    assert push(clone).returncode == 0
    second = commit(clone, "second")
    pushed = push(clone)
    assert pushed.returncode == 0 and "in the background" in pushed.stderr
    # Observed, not timed: whenever the older run is still running, the newer one is not (the newer record is read
    # first, so an older run still running at the second read was running at the first one too).
    states, deadline = set(), time.monotonic() + 300
    while time.monotonic() < deadline:
        newer_state = read_hook_run(home, second).state
        older_state = read_hook_run(home, first).state
        states.add((older_state, newer_state))
        if older_state in ("done", "failed"):
            break
        time.sleep(0.05)
    assert ("running", "running") not in states, states  # it waited for the lock
    wait_for(home, [first, second])
    older, newer = read_hook_run(home, first), read_hook_run(home, second)
    assert (older.state, newer.state) == ("done", "done"), [older, newer]
    runs = finished_runs(home)
    assert {runs[first]["status"], runs[second]["status"]} == {"met"}
    for sha in (first, second):
        run = RunStore(home).run(runs[sha]["run_id"])
        assert run.best_dir.joinpath("metrics.json").exists()
        assert all(t.has_metrics() for t in run.trials())


@pytest.mark.slow
def test_watch_runs_each_new_commit_once(repos, tmp_path):
    _, clone = repos
    home = tmp_path / "home"
    args = ["watch", str(clone), "--branch", "main", "--once", "--model", "model.py", "--home", str(home)]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    sha = git("rev-parse", "HEAD", cwd=clone)
    assert f"new commit {sha[:12]}" in first.output
    assert read_hook_run(home, sha).state == "done"
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0 and "no new commit" in again.output
    newer = commit(clone, "newer")
    third = CliRunner().invoke(main, args)
    assert third.exit_code == 0 and f"new commit {newer[:12]}" in third.output
    assert set(finished_runs(home)) == {sha, newer}


def test_watch_names_a_missing_branch(repos, tmp_path):
    _, clone = repos
    result = CliRunner().invoke(main, ["watch", str(clone), "--branch", "nope", "--once", "--home", str(tmp_path)])
    assert result.exit_code == 2
    assert f"{clone}: branch 'nope' not found; pass an existing branch to --branch" in result.output


def test_watch_rejects_a_zero_interval(repos, tmp_path):
    _, clone = repos
    result = CliRunner().invoke(main, ["watch", str(clone), "--interval", "0", "--home", str(tmp_path)])
    assert result.exit_code == 2
    assert "--interval 0: must be more than 0 seconds" in result.output
