"""The Docker engine connection, shared by the runner (docker.py) and the image builder (images.py)."""
from __future__ import annotations

import os

import docker
import requests

from mlci.core.errors import RunnerError

HOW_TO_START = ("start one with `sudo scripts/docker-setup.sh` (or `sudo dockerd &`), or point DOCKER_HOST at a "
                "running engine")
TRAIN_LOCALLY = "; or train without Docker: --runner local"


def engine_address() -> str:
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def connect(timeout: float = 60.0, *, for_training: bool = True) -> docker.DockerClient:
    """A client whose engine answered a ping, or a RunnerError saying how to start one."""
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
        return client
    except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as exc:
        raise RunnerError(f"no Docker engine answers at {engine_address()} ({reason(exc)})",
                          hint=HOW_TO_START + (TRAIN_LOCALLY if for_training else "")) from None


def engine_answers(timeout: float = 3.0) -> bool:
    try:
        client = docker.from_env(timeout=timeout)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (docker.errors.DockerException, requests.exceptions.RequestException, OSError):
        return False


def reason(exc: BaseException) -> str:
    """A Docker/requests error in a few words (the known causes), else its first 200 characters."""
    text = " ".join(str(exc).split())
    for known in ("No such file or directory", "Connection refused", "Permission denied", "timed out",
                  "Connection aborted", "Read timed out"):
        if known.lower() in text.lower():
            return known.lower()
    return text[:200]
