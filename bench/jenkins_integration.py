"""Benchmark of the Jenkins integration: rendering the jobs (in-process and `jenkins-jobs test`),
deploying them to the stand-in server on loopback, a push through the notifyCommit hook, and the
Jenkinsfile lint. Prints a table, writes bench/results/jenkins_integration.json.
"""
from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]

from jenkins_standin import running  # noqa: E402
from mlci.integrations import hook
from mlci.integrations import jenkins  # noqa: E402

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))


def timed(name: str, action, rounds: int = ROUNDS) -> dict:
    seconds = []
    for number in range(rounds):
        started = time.perf_counter()
        action(number)
        seconds.append(time.perf_counter() - started)
    return {"case": name, "rounds": rounds, "median_s": statistics.median(seconds), "max_s": max(seconds)}


def git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def main() -> None:
    results = []
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@example.com",
           "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@example.com", "PYTHONPATH": str(ROOT / "src")}
    os.environ.update(env)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        os.environ["XDG_CACHE_HOME"] = str(folder / "cache")
        results.append(timed("render 6 jobs + view (in-process)", lambda n: jenkins.render(folder / f"xml{n}")))
        cli = Path(sys.executable).parent / "jenkins-jobs"
        results.append(timed("`jenkins-jobs test jobs/` (new process)", lambda n: subprocess.run(
            [str(cli), "test", str(ROOT / "jobs"), "-o", str(folder / f"cli{n}")], check=True, capture_output=True)))
        with running() as server:
            credentials = jenkins.Credentials(server.url, "bench", "token")
            results.append(timed("deploy to the stand-in server (loopback)",
                                 lambda n: jenkins.deploy(credentials)))
            bare, clone = folder / "models.git", folder / "clone"
            git("init", "-q", "--bare", "-b", "main", str(bare), cwd=folder)
            git("clone", "-q", str(bare), str(clone), cwd=folder)
            hook.install(bare, jenkins_url=server.url)

            def push(number: int) -> None:
                (clone / "file.txt").write_text(str(number))
                git("add", ".", cwd=clone)
                git("commit", "-q", "-m", str(number), cwd=clone)
                git("push", "-q", "origin", "HEAD:main", cwd=clone)

            results.append(timed("git push with the notifyCommit hook", push))
        if shutil.which("npm") and shutil.which("java"):
            lint = ROOT / "scripts" / "lint-jenkinsfile.sh"
            results.append(timed("npm-groovy-lint of the Jenkinsfile", lambda n: subprocess.run(
                ["bash", str(lint)], check=True, capture_output=True), rounds=1))
    table = Table(title="mlci Jenkins integration")
    for column in ("case", "rounds", "median s", "max s"):
        table.add_column(column, justify="left" if column == "case" else "right")
    for row in results:
        table.add_row(row["case"], str(row["rounds"]), f"{row['median_s']:.3f}", f"{row['max_s']:.3f}")
    Console().print(table)
    target = ROOT / "bench" / "results" / "jenkins_integration.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"python": sys.version.split()[0], "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
