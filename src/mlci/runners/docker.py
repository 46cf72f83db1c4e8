"""DockerRunner: a trial trains in a container of the image that matches the model's framework.

The trial folder is mounted at /trial, with the trial's own copy of the model's folder in /trial/work (its
cwd); the user's folder is never mounted. The container
runs as a non-root user with the limits of `[resources]`, and is labelled mlci.run/trial/model.
"""
from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import docker
import requests
import urllib3
from docker.types import DeviceRequest

from mlci.core.config import ResourcesConfig, memory_bytes  # noqa: F401  (memory_bytes: re-exported)
from mlci.core.errors import ConfigError, MlciError, RunnerError
from mlci.core.store import TrialState, read_record, write_json
from mlci.core.workarea import WORK_NAME
from mlci.runners.base import LaunchSpec, Runner, Status
from mlci.runners.engine import connect, engine_address, engine_answers  # noqa: F401  (engine_answers: re-exported)
from mlci.runners.engine import reason as _reason
from mlci.runners.images import FRAMEWORK_LABEL, NO_REGISTRY_NOTE, build_command
from mlci.tuning.pruning import RELAY_ENV

LABEL_RUN, LABEL_TRIAL, LABEL_MODEL = "mlci.run", "mlci.trial", "mlci.model"
TRIAL_MOUNT = "/trial"  # the trial folder, writable; its work/ (a copy of the model's folder) is the cwd
IMAGE_USER = "1000:1000"  # the `mlci` user of dockerfiles/base
LOG_NAME = "log.txt"


def _read_timeout(exc: BaseException) -> bool:
    """A long-poll that ended without news (requests reports it as ReadTimeout or ConnectionError)."""
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return True
    inner = exc.args[0] if exc.args else None
    return isinstance(exc, requests.exceptions.ConnectionError) and isinstance(inner, urllib3.exceptions.ReadTimeoutError)


def container_name(run_id: str, trial: int | str) -> str:
    return "mlci-" + re.sub(r"[^a-zA-Z0-9_.-]", "-", run_id)[:100] + f"-{trial}"


def mounted(trial_dir: Path, path: Path) -> str:
    """A path inside the trial folder as the container sees it."""
    return f"{TRIAL_MOUNT}/{Path(path).resolve().relative_to(trial_dir).as_posix()}"


def container_env(extra: dict[str, str]) -> dict[str, str]:
    """A trial container's environment: `extra` (LaunchSpec.env) and what every trial gets."""
    env = {**extra, "HOME": "/tmp", "MPLCONFIGDIR": "/tmp/matplotlib", "KERAS_HOME": "/tmp/keras",
           "PYTHONUNBUFFERED": "1", "MLCI_TRIAL_DIR": TRIAL_MOUNT, RELAY_ENV: "relay"}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return env


WAIT_CHUNK = 30.0
MIN_MEMORY = 64 * 1024**2  # below this not even the Python interpreter of the harness starts


class DockerRunner(Runner):
    name = "docker"
    relays_pruning = True  # the study's address and password never enter the container

    def __init__(self, client: docker.DockerClient | None = None):
        self.client = client or connect()
        self._info: dict | None = None

    # ------------------------------------------------------------------ start

    def start(self, spec: LaunchSpec) -> str:
        image_ref, image, limits = self.prepare(spec)
        trial_dir = spec.trial_dir.resolve()
        trial_dir.mkdir(parents=True, exist_ok=True)
        (trial_dir / "exit_code").unlink(missing_ok=True)
        # The container gets the trial's own copy of the model's folder, readable by its user whatever the
        # source folder's permissions (a 0700 snapshot, a `mktemp -d` folder); the user's folder is not mounted.
        work_model = spec.prepare_work_area()
        user = self._user_for(trial_dir)
        command = ["python", "-m", "mlci.runners.logtee", f"{TRIAL_MOUNT}/{LOG_NAME}", "--",
                   "mlci", *spec.harness_args(TRIAL_MOUNT, mounted(trial_dir, work_model))]
        try:
            container = self.create(spec, image, image_ref, limits, command=command, folder=trial_dir, user=user,
                                    name=container_name(spec.run_id, spec.trial), trial=str(spec.trial))
        except docker.errors.APIError as exc:
            self.remove_stale(spec.run_id, spec.trial)  # created but not started: leave nothing behind
            raise self._start_error(exc, spec) from None
        except (requests.exceptions.RequestException, OSError) as exc:
            raise self._engine_lost(exc, "starting the trial's container") from None
        self._record(trial_dir, spec.trial, container.id, image_ref, user)
        return container.id

    def prepare(self, spec: LaunchSpec) -> tuple[str, object, dict]:
        """The image (reference and object) and the container options of `[resources]`; earlier attempts removed."""
        image_ref = spec.image or f"mlci/{spec.framework}:latest"
        image = self._image(image_ref, spec.framework)
        limits = self.limits(spec.resources)
        self.remove_stale(spec.run_id, spec.trial)
        return image_ref, image, limits

    def create(self, spec: LaunchSpec, image, image_ref: str, limits: dict, *, command: list[str], folder: Path,
               user: str, name: str, trial: str, labels: dict[str, str] | None = None):
        """Start a trial's container: `folder` alone mounted at /trial, non-root, read-only, no capabilities."""
        return self.client.containers.run(
            image.id, command=command, entrypoint=[], detach=True, name=name,
            labels={LABEL_RUN: spec.run_id, LABEL_TRIAL: trial, LABEL_MODEL: spec.model_name, "mlci.image": image_ref,
                    **(labels or {})},
            user=user, working_dir=f"{TRIAL_MOUNT}/{WORK_NAME}", environment=container_env(spec.env),
            volumes={str(folder): {"bind": TRIAL_MOUNT, "mode": "rw"}},
            privileged=False, cap_drop=["ALL"], security_opt=["no-new-privileges"], init=True,
            read_only=True, tmpfs={"/tmp": "rw,nosuid,nodev,exec"}, pids_limit=4096,
            **limits)

    def _image(self, ref: str, framework: str):
        try:
            image = self.client.images.get(ref)
        except docker.errors.ImageNotFound:
            how = (f"build it with `{build_command(framework)}` ({NO_REGISTRY_NOTE})"
                   if ref.startswith(f"mlci/{framework}:") else
                   f"pull it (`docker pull {ref}`), or set mlci.toml [images] {framework} = "
                   f"\"mlci/{framework}:latest\" and build that with `{build_command(framework)}`")
            raise RunnerError(f"image '{ref}' for {framework} models is not in the Docker engine", hint=how) from None
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise self._engine_lost(exc, f"looking up image '{ref}'") from None
        labelled = (image.labels or {}).get(FRAMEWORK_LABEL)
        if labelled is not None and labelled != framework:
            raise RunnerError(f"image '{ref}' trains {labelled} models, but the model is {framework}",
                              hint=f"set mlci.toml [images] {framework} to an image labelled "
                                   f"{FRAMEWORK_LABEL}={framework}, e.g. mlci/{framework}:latest")
        return image

    def limits(self, resources: ResourcesConfig) -> dict:
        """[resources] as container options; a value the engine cannot honour is a ConfigError."""
        options: dict = {}
        if resources.memory is not None:
            size = memory_bytes(resources.memory)
            if size < MIN_MEMORY:
                raise ConfigError(f"[resources] memory = '{resources.memory}' is too small to start a training "
                                  "container", hint="allowed: at least '64m'; e.g. '2g'")
            options["mem_limit"] = size
            options["memswap_limit"] = size  # no swap: an out-of-memory trial fails fast, visibly
        if resources.cpus is not None:
            host_cpus = self.info().get("NCPU") or os.cpu_count() or 1
            if resources.cpus > host_cpus:
                raise ConfigError(f"[resources] cpus = {resources.cpus:g} is more than the Docker engine has "
                                  f"({host_cpus})", hint=f"allowed: a number in (0, {host_cpus}]")
            options["nano_cpus"] = int(resources.cpus * 1e9)
        network = resources.network
        if network not in ("none", "host", "bridge", "default") and not network.startswith("container:"):
            if not self.client.networks.list(names=[network]):
                known = ", ".join(sorted({n.name for n in self.client.networks.list()}))
                raise ConfigError(f"[resources] network = '{network}' is not a network of the Docker engine",
                                  hint=f"allowed: {known}, or create it with `docker network create {network}`")
        options["network_mode"] = network
        if resources.gpus:
            options["device_requests"] = [DeviceRequest(count=resources.gpus, capabilities=[["gpu"]])]
        return options

    def info(self) -> dict:
        if self._info is None:
            self._info = self.client.info()
        return self._info

    def _start_error(self, exc: docker.errors.APIError, spec: LaunchSpec) -> MlciError:
        text = _reason(exc.explanation or exc)
        if "could not select device driver" in text or "nvidia" in text.lower():
            return RunnerError(f"[resources] gpus = {spec.resources.gpus} but the Docker engine at {engine_address()} "
                               f"has no GPU runtime ({text})",
                               hint="install the NVIDIA Container Toolkit and restart dockerd, or remove gpus "
                                    "from [resources]")
        if "memory" in text.lower():
            return ConfigError(f"[resources] memory = '{spec.resources.memory}' was refused by the Docker engine "
                               f"({text})", hint="use a size such as '2g'")
        return RunnerError(f"the Docker engine refused to start trial {spec.trial} of run {spec.run_id} ({text})")

    def _user_for(self, trial_dir: Path) -> str:
        """Who the container runs as: never root.

        A non-root mlci runs the container as itself, so the trial's files stay its own; mlci run
        as root (a CI machine) uses the image's `mlci` user and hands it the trial folder.
        """
        uid, gid = os.geteuid(), os.getegid()
        if uid != 0:
            return f"{uid}:{gid}"
        image_uid, image_gid = (int(part) for part in IMAGE_USER.split(":"))
        for path in [trial_dir, *trial_dir.rglob("*")]:
            os.chown(path, image_uid, image_gid, follow_symlinks=False)
        return IMAGE_USER

    def _record(self, trial_dir: Path, trial: int, container_id: str, image: str, user: str) -> None:
        path = trial_dir / "trial.json"
        state = read_record(path, TrialState, what="trial.json",
                                                        fix="delete it to let mlci treat the trial as pending") if path.exists() else TrialState(trial=trial)
        state = state.model_copy(update={"runner": self.name, "container_id": container_id, "image": image,
                                         "user": user, "pid": None})
        write_json(path, state)

    def remove_stale(self, run_id: str, trial: int) -> int:
        """Remove containers left by an earlier attempt at this trial (a name is unique per engine)."""
        stale = self.client.containers.list(all=True, filters={"label": [f"{LABEL_RUN}={run_id}",
                                                                          f"{LABEL_TRIAL}={trial}"]})
        try:
            stale += [self.client.containers.get(container_name(run_id, trial))]
        except docker.errors.NotFound:
            pass
        removed = set()
        for container in stale:
            if container.id not in removed:
                try:
                    container.remove(force=True)
                except docker.errors.NotFound:
                    pass
                removed.add(container.id)
        return len(removed)

    # ------------------------------------------------------------------ observe

    def _container(self, handle: str, doing: str):
        try:
            return self.client.containers.get(handle)
        except docker.errors.NotFound:
            return None
        except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as exc:
            raise self._engine_lost(exc, doing) from None

    def _engine_lost(self, exc: BaseException, doing: str) -> RunnerError:
        return RunnerError(f"the Docker engine at {engine_address()} stopped answering while {doing} "
                           f"({_reason(exc)})",
                           hint="the run store keeps the trial; start the engine again (`sudo scripts/docker-setup.sh`)"
                                " and rerun the same command to continue")

    def status(self, handle: str) -> Status:
        container = self._container(handle, f"reading container {handle[:12]}")
        if container is None:
            return Status("missing", handle, reason="container gone (removed)")
        state = container.attrs["State"]
        if state.get("Running") or state.get("Status") in ("created", "restarting"):
            return Status("running", handle)
        code = int(state.get("ExitCode", -1))
        if state.get("OOMKilled"):
            return Status("oom", handle, exit_code=code, signal=signal.SIGKILL, reason="OOM-killed (memory limit)")
        if code > 128:
            number = code - 128
            try:
                name = signal.Signals(number).name
            except ValueError:
                name = f"signal {number}"
            return Status("killed", handle, exit_code=code, signal=number, reason=f"killed by {name}")
        return Status("exited", handle, exit_code=code, reason=f"exit code {code}")

    def wait(self, handle: str, timeout: float | None = None) -> Status:
        container = self._container(handle, f"waiting for container {handle[:12]}")
        if container is None:
            return Status("missing", handle, reason="container gone (removed)")
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            # Long-polls of at most 30 s: the client's own read timeout must never be what ends a wait.
            left = WAIT_CHUNK if deadline is None else min(WAIT_CHUNK, max(deadline - time.monotonic(), 0.01))
            try:
                container.wait(timeout=left)
                break
            except docker.errors.NotFound:
                return Status("missing", handle, reason="container gone (removed)")
            except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as exc:
                if not _read_timeout(exc):
                    raise self._engine_lost(exc, f"waiting for container {handle[:12]}") from None
                if deadline is not None and time.monotonic() >= deadline:
                    return Status("running", handle)
        return self.status(handle)

    def kill(self, handle: str) -> None:
        container = self._container(handle, f"stopping container {handle[:12]}")
        if container is None:
            return
        try:
            container.kill()
        except docker.errors.APIError as exc:
            if "is not running" not in str(exc):
                raise RunnerError(f"cannot stop container {handle[:12]} ({_reason(exc)})") from None
        try:
            container.wait(timeout=30)
        except (docker.errors.DockerException, requests.exceptions.RequestException):
            pass

    def logs(self, handle: str, tail: int | str = "all") -> str:
        container = self._container(handle, f"reading the log of container {handle[:12]}")
        return "" if container is None else container.logs(tail=tail).decode(errors="replace")

    def remove(self, handle: str) -> None:
        container = self._container(handle, f"removing container {handle[:12]}")
        if container is not None:
            container.remove(force=True)

    def containers(self, run_id: str | None = None) -> list:
        """The run's containers (every run's with None): its trials' and its standbys' (mlci.runners.docker_standby)."""
        labels = [LABEL_RUN] if run_id is None else [f"{LABEL_RUN}={run_id}"]
        return self.client.containers.list(all=True, filters={"label": labels})

    def status_for(self, handle: str, trial_dir: Path) -> Status:
        """Same as status(): the engine keeps a container's exit state for any process that asks."""
        return self.status(handle)
