"""Runners: where a trial trains (a local subprocess or a Docker container), chosen by name."""
from __future__ import annotations

from mlci.core.errors import RunnerError, UsageError
from mlci.runners.base import LaunchSpec, Runner, Status
from mlci.runners.local import LocalRunner

__all__ = ["LaunchSpec", "Runner", "Status", "LocalRunner", "get_runner", "docker_available"]


def docker_available() -> bool:
    try:
        from mlci.runners.engine import engine_answers
    except ImportError:
        return False
    return engine_answers()


def get_runner(name: str, *, notice=None, workers: str = "fresh", idle_minutes: float = 10.0) -> Runner:
    """`local`, `docker`, or `auto` (Docker when an engine answers, else local with a notice).

    workers="warm": local trials fork from a pre-imported worker (WarmRunner, recorded as runner `warm`); Docker
    trials after the first start in a standby container made during the previous one (StandbyDockerRunner).
    workers="daemon": local trials fork from a worker kept warm between runs until it has been idle `idle_minutes`.
    """
    if name == "warm" or (name == "local" and workers in ("warm", "daemon")):
        from mlci.runners.warm import WarmRunner

        return WarmRunner(daemon=workers == "daemon", idle_minutes=idle_minutes)
    if name == "local":
        return LocalRunner()
    if name in ("docker", "auto"):
        try:
            from mlci.runners.docker import DockerRunner
        except ImportError as exc:
            if name == "docker":
                raise RunnerError(f"the Docker runner needs the 'docker' package ({exc})",
                                  hint="pip install 'mlci[docker]'") from None
            DockerRunner = None  # noqa: N806
        if DockerRunner is not None and workers in ("warm", "daemon"):
            from mlci.runners.docker_standby import StandbyDockerRunner

            DockerRunner = StandbyDockerRunner  # noqa: N806
        if name == "docker":
            return DockerRunner()
        if DockerRunner is not None and docker_available():
            return DockerRunner()
        if notice:
            notice("runner=auto: no Docker engine answers, training in local processes")
        return get_runner("local", workers=workers, idle_minutes=idle_minutes)
    raise UsageError(f"unknown runner '{name}'", hint="use local, docker or auto")
