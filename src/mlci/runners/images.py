"""Training images: one per framework on a shared base, built with the Docker SDK from the Dockerfiles
that ship inside mlci (mlci/dockerfiles/), so an installed mlci builds them as a checkout does.

Python packages come from a host-side wheelhouse (`pip download` for the image's Python and
platform), so a build needs no network; a content-hash label lets an unchanged image be skipped.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata, resources
from pathlib import Path
from typing import Callable, Iterable

from mlci import __version__
from mlci.core.errors import RunnerError, UsageError
from mlci.runners import mlci_wheel
from mlci.runners.mlci_wheel import run_pip as _pip

# name -> (parent, the mlci extra whose packages it adds); built in this order.
IMAGES: dict[str, tuple[str | None, str | None]] = {
    "base": (None, None),
    "sklearn": ("base", None),
    "keras": ("base", "keras"),
    "torch": ("base", "torch"),
}
FRAMEWORKS = ("sklearn", "keras", "torch")
REGISTRY_BASE = "python:3.11-slim"
LOCAL_BASE = "mlci/bookworm-python:3.11"  # what make-base-image.sh makes (`mlci images make-base`)
HASH_LABEL = "mlci.content-hash"
FRAMEWORK_LABEL = "mlci.framework"
VERSION_LABEL = "mlci.version"
# The images' Python and platform (Debian bookworm: glibc 2.36; python:3.11-slim is as new or newer).
# pip does not widen --platform to older manylinux tags: name each one a glibc 2.36 system runs.
TARGET = ["--python-version", "3.11", "--implementation", "cp", "--abi", "cp311", "--only-binary=:all:",
          *[arg for minor in range(36, 4, -1) for arg in ("--platform", f"manylinux_2_{minor}_x86_64")],
          "--platform", "manylinux2014_x86_64", "--platform", "manylinux2010_x86_64", "--platform", "manylinux1_x86_64"]

Progress = Callable[[str], None]


def tag_for(name: str, version: str = __version__) -> str:
    return f"mlci/{name}:{version}"


@dataclass
class BuildResult:
    name: str
    tag: str
    image_id: str
    built: bool  # False: an image with the same content hash existed
    seconds: float
    size: int
    content_hash: str
    steps: dict[str, float] = field(default_factory=dict)


def dockerfiles() -> Path:
    """The folder of Dockerfiles (one subfolder per image) and make-base-image.sh, inside the package."""
    folder = Path(str(resources.files("mlci") / "dockerfiles"))
    missing = [name for name in IMAGES if not (folder / name / "Dockerfile").is_file()]
    if missing:
        raise UsageError(f"{folder}: the Dockerfiles of {', '.join(missing)} are missing from this mlci installation",
                         hint="reinstall mlci from its wheel (pip install --force-reinstall mlci-*.whl)")
    return folder


def make_base_image(image: str | None = None) -> None:
    """Run make-base-image.sh: debootstrap + `docker import`, no registry needed (root; an existing image is kept)."""
    script = Path(str(resources.files("mlci") / "dockerfiles" / "make-base-image.sh"))
    done = subprocess.run(["bash", str(script), *([image] if image else [])])
    if done.returncode != 0:
        raise RunnerError(f"{script} failed (exit {done.returncode})", hint="its last lines are above")


def default_wheelhouse() -> Path:
    """$MLCI_WHEELHOUSE, else a checkout's .cache/wheelhouse/, else the user's cache (~/.cache/mlci/wheelhouse)."""
    if os.environ.get("MLCI_WHEELHOUSE"):
        return Path(os.environ["MLCI_WHEELHOUSE"])
    root = mlci_wheel.source_root()
    if root is not None:
        return root / ".cache" / "wheelhouse"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mlci" / "wheelhouse"


def client_or_error():
    """A Docker client that answers, or a RunnerError saying how to get one."""
    try:
        from mlci.runners.engine import connect
    except ImportError as exc:
        raise RunnerError(f"building images needs the 'docker' package ({exc})",
                          hint="pip install 'mlci[docker]'") from None
    return connect(for_training=False)


# ----------------------------------------------------------------------------- base image


def resolve_base(client, explicit: str | None, progress: Progress = lambda line: None) -> str:
    """--base, else $MLCI_BASE_IMAGE, else the locally made base if present, else python:3.11-slim (pulled)."""
    import docker

    wanted = explicit or os.environ.get("MLCI_BASE_IMAGE")
    if not wanted:
        wanted = LOCAL_BASE if _has_image(client, LOCAL_BASE) else REGISTRY_BASE
    if _has_image(client, wanted):
        return wanted
    progress(f"pulling {wanted}")
    try:
        client.images.pull(wanted)
    except docker.errors.DockerException as exc:
        raise RunnerError(f"base image '{wanted}' is not here and cannot be pulled ({_short(exc)})",
                          hint="without a registry, make one with `sudo mlci images make-base` and build with "
                               f"`mlci images build --base {LOCAL_BASE}`") from None
    return wanted


def _has_image(client, ref: str) -> bool:
    import docker

    try:
        client.images.get(ref)
        return True
    except docker.errors.ImageNotFound:
        return False


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]


# ----------------------------------------------------------------------------- wheelhouse


def requirements_of(wheel: Path, extra: str | None) -> list[str]:
    """Requirements from a wheel's metadata: the unconditional ones, or those of one extra."""
    import zipfile

    from packaging.requirements import Requirement

    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        text = archive.read(name).decode()
    found = []
    for line in text.splitlines():
        if not line.startswith("Requires-Dist:"):
            continue
        requirement = Requirement(line.split(":", 1)[1].strip())
        marker = requirement.marker
        in_extra = marker is not None and "extra" in str(marker)
        if extra is None and not in_extra:
            found.append(str(requirement))
        elif extra is not None and in_extra and marker.evaluate({"extra": extra}):
            requirement.marker = None
            found.append(str(requirement))
    return found


def host_constraints() -> list[str]:
    """Pin the images to the versions this host runs, so a trial trains the same in and out of a container."""
    pins = {}
    for dist in metadata.distributions():
        name = (dist.metadata["Name"] or "").lower()
        if name and name not in ("mlci", "pip", "setuptools", "wheel"):
            pins[re.sub(r"[-_.]+", "-", name)] = f"{name}=={dist.version}"
    return sorted(pins.values())


def fill_wheelhouse(folder: Path, requirements: list[str], progress: Progress) -> float:
    """Wheels for `requirements` (and their dependencies) for the images' Python, into `folder`.

    Offline first (what an earlier run downloaded is enough), then from the package index.
    """
    folder.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    constraints = folder / "constraints.txt"
    constraints.write_text("\n".join(host_constraints()) + "\n")
    base = ["download", "-q", "--disable-pip-version-check", "-d", str(folder), *TARGET]
    local = ["--no-index", "--find-links", str(folder)]
    try:
        _pip([*base, *local, "-c", str(constraints), *requirements], what="")
        return time.monotonic() - started
    except RunnerError:
        pass
    progress(f"downloading wheels into {folder}")
    try:
        _pip([*base, "--find-links", str(folder), "-c", str(constraints), *requirements], what="")
    except RunnerError:
        # A host version with no wheel for the image's platform: let pip choose within mlci's ranges.
        _pip([*base, "--find-links", str(folder), *requirements],
             what=f"download wheels for {' '.join(requirements)} into {folder}")
    return time.monotonic() - started


def _pip_wheel(folder: Path) -> Path:
    found = sorted(folder.glob("pip-*.whl"))
    if not found:
        _pip(["download", "-q", "--no-deps", "--only-binary=:all:", "-d", str(folder), "pip"],
             what=f"download pip's wheel into {folder}")
        found = sorted(folder.glob("pip-*.whl"))
    return found[-1]


# ----------------------------------------------------------------------------- build


def content_hash(dockerfile: Path, wheels: Iterable[Path], parent_id: str, extra: str = "") -> str:
    """Dockerfile, wheels (name and size), the image below and `extra` (the base: what mlci's wheel installs).

    mlci's own wheel counts by `extra` only: a build and a repack of the same code differ in their bytes.
    """
    digest = hashlib.sha256()
    digest.update(dockerfile.read_bytes())
    for wheel in sorted(wheels, key=lambda p: p.name):
        if wheel.name.startswith("mlci-"):
            continue
        digest.update(wheel.name.encode())
        digest.update(str(wheel.stat().st_size).encode())
    digest.update(parent_id.encode())
    digest.update(extra.encode())
    return digest.hexdigest()[:16]


def _context(house: Path, dockerfile: Path, wheels: list[Path], pip_wheel: Path, requirements: list[str]) -> Path:
    """A build context holding the Dockerfile, wheels/ (hard links into the wheelhouse) and pip.whl.

    A fresh folder inside the wheelhouse: the links need one file system, and two builds never share it.
    """
    context = Path(tempfile.mkdtemp(prefix=".build-", dir=house))
    (context / "wheels").mkdir()
    shutil.copy2(dockerfile, context / "Dockerfile")
    for wheel in wheels:
        _link(wheel, context / "wheels" / wheel.name)
    _link(pip_wheel, context / "wheels" / "pip.whl")
    (context / "wheels" / "requirements.txt").write_text("\n".join(requirements) + "\n")
    return context


def _link(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def build_images(names: Iterable[str] | None = None, *, base: str | None = None, wheelhouse: Path | None = None,
                 force: bool = False, progress: Progress = lambda line: None, client=None) -> list[BuildResult]:
    """Build base, sklearn, keras and torch (or `names` and what they stand on); skip the unchanged ones."""
    wanted = list(names or IMAGES)
    for name in wanted:
        if name not in IMAGES:
            raise UsageError(f"unknown image '{name}'", hint=f"known images: {', '.join(IMAGES)}")
    order = [n for n in IMAGES if n in wanted or any(IMAGES[w][0] == n for w in wanted)]
    files = dockerfiles()
    client = client or client_or_error()
    house = (wheelhouse or default_wheelhouse()).resolve()
    house.mkdir(parents=True, exist_ok=True)
    base_ref = resolve_base(client, base, progress)
    base_id = client.images.get(base_ref).id

    started = time.monotonic()
    own_wheel = mlci_wheel.mlci_wheel(house / "mlci")
    own_hash = mlci_wheel.content_hash(own_wheel)
    wheel_seconds = time.monotonic() - started
    pip_wheel = _pip_wheel(house / "tools")
    results: list[BuildResult] = []
    built_ids: dict[str, str] = {}
    for name in order:
        parent, extra = IMAGES[name]
        folder = house / name
        steps = {"mlci_wheel": wheel_seconds} if name == "base" else {}
        if name == "base":
            requirements = ["mlci"]
            steps["wheelhouse"] = fill_wheelhouse(folder, [str(own_wheel)], progress)
            for old in folder.glob("mlci-*.whl"):
                old.unlink()
            shutil.copy2(own_wheel, folder / own_wheel.name)
        elif extra:
            requirements = requirements_of(own_wheel, extra)
            steps["wheelhouse"] = fill_wheelhouse(folder, requirements, progress)
        else:
            requirements = []
        wheels = sorted(folder.glob("*.whl")) if requirements else []
        parent_id = base_id if parent is None else built_ids[parent]
        digest = content_hash(files / name / "Dockerfile", wheels, parent_id, own_hash if name == "base" else "")
        tag = tag_for(name)
        existing = _existing(client, tag)
        if existing is not None and not force and existing.labels.get(HASH_LABEL) == digest:
            progress(f"{tag}: unchanged (content hash {digest}), not rebuilt")
            built_ids[name] = existing.id
            _tag_latest(existing, name)
            results.append(BuildResult(name, tag, existing.id, False, 0.0, existing.attrs["Size"], digest, steps))
            continue
        context = _context(house, files / name / "Dockerfile", wheels, pip_wheel, requirements)
        buildargs = {"BASE_IMAGE": base_ref} if parent is None else {"MLCI_BASE": tag_for(parent)}
        progress(f"{tag}: building (content hash {digest})")
        t0 = time.monotonic()
        image_id = _docker_build(client, context, tag, buildargs,
                                 {HASH_LABEL: digest, VERSION_LABEL: __version__, "mlci.base-image": base_ref},
                                 progress)
        steps["docker_build"] = time.monotonic() - t0
        shutil.rmtree(context, ignore_errors=True)
        image = client.images.get(image_id)
        _tag_latest(image, name)
        built_ids[name] = image.id
        results.append(BuildResult(name, tag, image.id, True, steps["docker_build"], image.attrs["Size"], digest,
                                   steps))
    if any(result.built for result in results):
        _prune_builders(client)
    return results


def _existing(client, tag: str):
    import docker

    try:
        return client.images.get(tag)
    except docker.errors.ImageNotFound:
        return None


def _prune_builders(client) -> None:
    """Drop the builder stages (wheels, pip) and the images a rebuild replaced: only mlci's own.

    A rebuild happens only when a builder stage's inputs changed, so keeping them buys nothing.
    """
    import docker

    for label in ("mlci.stage=builder", HASH_LABEL):
        try:
            client.images.prune(filters={"dangling": True, "label": label})
        except docker.errors.APIError:
            pass  # a prune already running; the next build tidies up


def _tag_latest(image, name: str) -> None:
    image.tag(f"mlci/{name}", "latest")


def _docker_build(client, context: Path, tag: str, buildargs: dict[str, str], labels: dict[str, str],
                  progress: Progress) -> str:
    import docker

    last: list[str] = []
    image_id = None
    try:
        for chunk in client.api.build(path=str(context), tag=tag, buildargs=buildargs, labels=labels, rm=True,
                                      forcerm=True, pull=False, decode=True):
            if "error" in chunk:
                detail = " | ".join(last[-3:])
                raise RunnerError(f"building {tag} failed: {chunk['error'].strip()} ({detail})",
                                  hint=f"the full output is above; the context is kept in {context}")
            line = (chunk.get("stream") or "").rstrip()
            if line:
                last.append(line)
                progress(line)
            if "aux" in chunk and "ID" in chunk["aux"]:
                image_id = chunk["aux"]["ID"]
    except docker.errors.DockerException as exc:
        raise RunnerError(f"building {tag} failed ({_short(exc)})", hint="is the Docker engine still running?") from None
    if image_id is None:
        image_id = client.images.get(tag).id
    return image_id


# ----------------------------------------------------------------------------- list / check


@dataclass
class ImageInfo:
    tag: str
    image_id: str
    framework: str | None
    size: int
    created: str
    content_hash: str | None


def list_images(client=None) -> list[ImageInfo]:
    client = client or client_or_error()
    found = []
    for image in client.images.list(filters={"label": FRAMEWORK_LABEL}):
        labels = image.labels or {}
        for tag in image.tags:  # an untagged one was replaced by a rebuild (pruned once no container uses it)
            found.append(ImageInfo(tag, image.short_id, labels.get(FRAMEWORK_LABEL), image.attrs["Size"],
                                   image.attrs.get("Created", "")[:19], labels.get(HASH_LABEL)))
    return sorted(found, key=lambda info: info.tag)


def build_command(framework: str) -> str:
    """The command that builds the image a framework trains in (said when that image is missing)."""
    return f"mlci images build {framework}"


NO_REGISTRY_NOTE = "where no image registry is reachable, run `sudo mlci images make-base` first"
