"""Standby containers: the Docker runner's next trial container is started, and imports its framework, while the
current trial trains (`workers = "warm"`, the default; see docs/warm-workers.md).

Still one container per trial, with every guarantee of DockerRunner.start: a standby is created exactly as a trial
container (non-root, read-only, no capabilities, `[resources]`' limits and network) on a fresh, empty standby
folder mounted at /trial; at hand-over the trial folder's content moves into that folder and the two folders
exchange names in one step, so the container's /trial is the trial folder (a bind mount follows the folder, not its
path) and its memory cgroup, exit code and OOM flag are the trial's. A standby is handed one trial, or removed.
"""
from __future__ import annotations

import os
import secrets
import shutil
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import docker
import requests

from mlci.core._files import swap_in
from mlci.core.store import write_json
from mlci.core.workarea import WORK_NAME
from mlci.runners.base import LaunchSpec
from mlci.runners.docker import (LABEL_TRIAL, LOG_NAME, TRIAL_MOUNT, DockerRunner, container_env,
                                 container_name, mounted)
from mlci.runners.standby import GO_FILE, READY_LINE
from mlci.runners.warm_worker import model_libraries, start_ticks

STANDBY = "standby"  # the mlci.trial label of a standby (labels are fixed at creation: it keeps it after hand-over)
LABEL_OWNER = "mlci.standby.owner"  # host:pid:start ticks of the mlci process that made it
LABEL_FOLDER = "mlci.standby.folder"  # its standby folder on the host, removed with it
FOLDER_PREFIX = ".standby-"  # in the run's trials/ (the same file system as the trial folders; never a trial number)
IMPORT_POLL = 0.1
STANDBY_CPU_SHARES = 2  # the least Docker allows: a standby imports on the CPU the running trial leaves
TRIAL_CPU_SHARES = 1024  # Docker's default, what a trial container gets (set at hand-over)
NAME_MARK = f"-{STANDBY}-"  # in a standby's name (mlci-RUN-standby-TOKEN) until hand-over renames it


@dataclass
class Standby:
    key: tuple
    container: object
    folder: Path
    user: str
    ready: bool = False  # the framework is imported: a trial handed over starts at once


def importing(standby: Standby) -> bool:
    """Whether the standby is still importing its framework: running, and no ready line in `docker logs` yet."""
    if standby.ready:
        return False
    try:
        standby.container.reload()
        logs = standby.container.logs(stdout=True, stderr=False).decode(errors="replace")
    except (docker.errors.DockerException, requests.exceptions.RequestException):
        return False  # gone
    standby.ready = READY_LINE in logs
    return not standby.ready and standby.container.status == "running"


def owner_id(pid: int | None = None) -> str:
    pid = pid or os.getpid()
    return f"{socket.gethostname()}:{pid}:{start_ticks(pid)}"


def owner_alive(owner: str) -> bool:
    """Whether the mlci process that made a standby still runs (one on another host is taken to be alive)."""
    host, _, rest = owner.partition(":")
    pid, _, ticks = rest.partition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True
    return str(start_ticks(int(pid))) == ticks


def unused_standby(container) -> bool:
    """A standby container that was never handed a trial (hand-over renames it)."""
    return container.labels.get(LABEL_TRIAL) == STANDBY and NAME_MARK in container.name


def unused_standby_event(event: dict) -> bool:
    """A Docker event of a standby container that was never handed a trial."""
    attributes = (event.get("Actor") or {}).get("Attributes") or {}
    return attributes.get(LABEL_TRIAL) == STANDBY and NAME_MARK in (attributes.get("name") or "")


def remove_standby(container, folder: str | Path | None) -> None:
    try:
        container.remove(force=True)
    except (docker.errors.DockerException, requests.exceptions.RequestException):
        pass  # gone already; an engine that went away is reported by the next start
    if folder and Path(folder).name.startswith(FOLDER_PREFIX):
        shutil.rmtree(folder, ignore_errors=True)


def _link_content(source: Path, target: Path) -> None:
    """The trial folder's files into the standby folder (hard links: nothing is copied; the work area is made anew).
    The trial folder keeps its files until the exchange: a reader never finds it empty."""
    for entry in os.scandir(source):
        if entry.name in (WORK_NAME, GO_FILE):
            continue
        destination = target / entry.name
        if entry.is_dir(follow_symlinks=False):
            shutil.copytree(entry.path, destination, symlinks=True, copy_function=_link, dirs_exist_ok=True)
        else:
            _link(entry.path, destination)


def _link(source: str, destination: str | Path) -> None:
    try:
        os.link(source, destination, follow_symlinks=False)
    except OSError:
        shutil.copy2(source, destination, follow_symlinks=False)


class StandbyDockerRunner(DockerRunner):
    """DockerRunner whose trials, from the second on, start in a standby container made during the previous one."""

    def __init__(self, client: docker.DockerClient | None = None):
        super().__init__(client)
        self.standbys: dict[tuple, list[Standby]] = {}  # ready or importing, oldest first
        self.ahead: dict[tuple, int] = {}  # standbys kept: 1, or 2 once a trial came before its standby had imported
        self.standby_error: str | None = None  # why the last standby could not be made (the next start is a fresh one)
        self._changed = threading.Condition()
        self._pending: dict[tuple, int] = {}  # standbys being made
        self._makers: list[threading.Thread] = []
        self._closed = False
        self._swept = False

    def start(self, spec: LaunchSpec) -> str:
        image_ref, image, limits = self.prepare(spec)
        key = (spec.run_id, spec.framework, image.id, repr(sorted(limits.items())))
        standby = self._take(key)
        handle = self._hand_over(standby, spec, image_ref) if standby is not None else None
        if handle is None:
            handle = super().start(spec)  # the first trial, another image or limits, or the standby died
        self._top_up(spec, key, image, image_ref, limits)
        return handle

    def _take(self, key: tuple) -> Standby | None:
        """The oldest standby for `key`; one being made (a second) is waited for: a fresh container costs the import."""
        with self._changed:
            while not self.standbys.get(key) and self._pending.get(key):
                self._changed.wait()
            queue = self.standbys.get(key)
            return queue.pop(0) if queue else None

    def _top_up(self, spec: LaunchSpec, key: tuple, image, image_ref: str, limits: dict) -> None:
        """Make the standbys `key` lacks, one after another, in a background thread: the trial trains meanwhile."""
        with self._changed:
            missing = self.ahead.get(key, 1) - len(self.standbys.get(key, ())) - self._pending.get(key, 0)
            if missing <= 0 or self._closed:
                return
            self._pending[key] = self._pending.get(key, 0) + missing
            maker = threading.Thread(target=self._make, args=(spec, key, image, image_ref, limits, missing),
                                     name="mlci-standby", daemon=True)
            self._makers.append(maker)
        maker.start()

    def _hand_over(self, standby: Standby, spec: LaunchSpec, image_ref: str) -> str | None:
        """Give the trial to the standby; None (and the standby removed) if it is not running any more."""
        container = standby.container
        try:
            container.reload()
            if container.status != "running":
                raise docker.errors.NotFound(f"standby {container.name} is {container.status}")
            if importing(standby):
                self.ahead[standby.key] = 2  # trials shorter than a standby's import: the next gets a longer start
            container.rename(container_name(spec.run_id, spec.trial))
            container.update(cpu_shares=TRIAL_CPU_SHARES)  # from here on it is the trial: the CPU share of one
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            self.standby_error = f"standby not used ({exc})"
            remove_standby(container, standby.folder)
            return None
        trial_dir = spec.trial_dir.resolve()
        try:
            trial_dir.mkdir(parents=True, exist_ok=True)
            (trial_dir / "exit_code").unlink(missing_ok=True)
            _link_content(trial_dir, standby.folder)
            os.chmod(standby.folder, trial_dir.stat().st_mode & 0o7777)
            swap_in(standby.folder, trial_dir)  # the container's /trial is now the trial folder; the old one is gone
        except BaseException:
            remove_standby(container, standby.folder)  # the trial folder is as it was
            raise
        try:
            return self._go(container, spec, trial_dir, image_ref)
        except BaseException:
            remove_standby(container, None)  # never a container waiting with a trial's name
            raise

    def _go(self, container, spec: LaunchSpec, trial_dir: Path, image_ref: str) -> str:
        work_model = spec.prepare_work_area()
        user = self._user_for(trial_dir)  # a root mlci hands the trial's files to the image's user, as start() does
        request = {"args": spec.harness_args(TRIAL_MOUNT, mounted(trial_dir, work_model)),
                   "env": container_env(spec.env), "cwd": f"{TRIAL_MOUNT}/{WORK_NAME}",
                   "log": f"{TRIAL_MOUNT}/{LOG_NAME}"}
        write_json(trial_dir / GO_FILE, request, mode=0o644)  # last: the trial starts when it appears
        self._record(trial_dir, spec.trial, container.id, image_ref, user)
        return container.id

    def _make(self, spec: LaunchSpec, key: tuple, image, image_ref: str, limits: dict, count: int) -> None:
        for _ in range(count):
            standby = None
            try:
                self._wait_imported(key)  # one import at a time: two would share the CPUs the trial trains on
                standby = self._create_standby(spec, key, image, image_ref, limits)
            except Exception as exc:  # noqa: BLE001  no standby: the next trial starts a container of its own
                self.standby_error = f"{type(exc).__name__}: {exc}"
            finally:
                with self._changed:
                    self._pending[key] -= 1
                    closed = self._closed
                    if standby is not None and not closed:
                        self.standbys.setdefault(key, []).append(standby)
                    self._changed.notify_all()
            if standby is not None and closed:
                remove_standby(standby.container, standby.folder)

    def _create_standby(self, spec: LaunchSpec, key: tuple, image, image_ref: str, limits: dict) -> Standby:
        """A standby for the next trial like `spec`: a trial container on its own empty standby folder."""
        token = secrets.token_hex(4)
        folder = spec.trial_dir.resolve().parent / f"{FOLDER_PREFIX}{token}"
        if not self._swept:
            self._swept = True
            self.remove_orphans()
        try:
            (folder / WORK_NAME).mkdir(parents=True)
            user = self._user_for(folder)
            command = ["python", "-m", "mlci.runners.standby", spec.framework, *model_libraries(spec.model_file)]
            labels = {LABEL_OWNER: owner_id(), LABEL_FOLDER: str(folder)}
            # The import runs on what CPU the trial training meanwhile leaves: never slower than a fresh container
            container = self.create(spec, image, image_ref, {**limits, "cpu_shares": STANDBY_CPU_SHARES},
                                    command=command, folder=folder, user=user, trial=STANDBY, labels=labels,
                                    name=f"{container_name(spec.run_id, STANDBY)}-{token}")
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return Standby(key, container, folder, user)

    def remove_orphans(self) -> int:
        """Remove the unused standbys of mlci processes that ended without removing them (killed, crashed)."""
        removed = 0
        for container in self.client.containers.list(all=True, filters={"label": [f"{LABEL_TRIAL}={STANDBY}"]}):
            if unused_standby(container) and not owner_alive(container.labels.get(LABEL_OWNER, "")):
                remove_standby(container, container.labels.get(LABEL_FOLDER))
                removed += 1
        return removed

    def _wait_imported(self, key: tuple, timeout: float = 600.0) -> None:
        """Until every standby of `key` has imported its framework (or ended, or `timeout`)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            waiting = [standby for standby in self.standbys.get(key, ()) if not standby.ready]
        for standby in waiting:
            while not self._closed and time.monotonic() < deadline and importing(standby):
                time.sleep(IMPORT_POLL)

    def wait_for_standbys(self) -> None:
        """Until the standbys being made are made (or failed: standby_error says why)."""
        with self._changed:
            while any(self._pending.values()):
                self._changed.wait()

    def close(self) -> None:
        """The run's end: its unused standbys (containers and folders) are removed; none is made after."""
        with self._changed:
            self._closed = True
            makers, self._makers = self._makers, []
        for maker in makers:
            maker.join()
        with self._changed:
            standbys = [standby for queue in self.standbys.values() for standby in queue]
            self.standbys = {}
        for standby in standbys:
            remove_standby(standby.container, standby.folder)
