"""mlci's own wheel, which the base image installs: built from a checkout, or repacked from the installed mlci.

Either way the image's harness is the orchestrator's code; the content hash names that code, not the zip.
"""
from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

from mlci import __version__
from mlci.core.errors import RunnerError

# Made by the installer, not part of the wheel it installed (RECORD is written anew).
INSTALLER_FILES = ("INSTALLER", "RECORD", "REQUESTED", "direct_url.json")


def source_root() -> Path | None:
    """The checkout this mlci runs from (src/mlci beside setup.cfg), or None for an installed mlci."""
    root = Path(__file__).resolve().parents[3]
    if (root / "setup.cfg").is_file() and (root / "pyproject.toml").is_file() and (root / "src" / "mlci").is_dir():
        return root
    return None


def mlci_wheel(dest: Path) -> Path:
    """The wheel of the running mlci in `dest` (emptied of older mlci wheels first)."""
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob("mlci-*.whl"):
        old.unlink()
    root = source_root()
    wheel = build_from_checkout(root, dest) if root is not None else repack_installed(dest)
    wheels = list(dest.glob("mlci-*.whl"))
    if wheels != [wheel]:
        raise RunnerError(f"making mlci's wheel left {len(wheels)} wheels in {dest}", hint="remove that folder")
    return wheel


def build_from_checkout(root: Path, dest: Path) -> Path:
    """`pip wheel --no-deps` of a copy of the checkout (an in-tree build would leave build/ and egg-info there)."""
    with tempfile.TemporaryDirectory(prefix="mlci-wheel-") as tmp:
        # symlinks=False: src/mlci/jenkins_files and src/mlci/examples link to jobs/, scripts/, models/.
        shutil.copytree(root / "src", Path(tmp) / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        for name in ("setup.cfg", "pyproject.toml", "README.md"):
            shutil.copy2(root / name, Path(tmp) / name)
        try:  # the host's setuptools first (offline); an isolated build fetches setuptools and wheel
            run_pip(["wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dest), tmp], what="")
        except RunnerError:
            run_pip(["wheel", "--no-deps", "-q", "-w", str(dest), tmp], what="build mlci's wheel")
    return next(dest.glob("mlci-*.whl"))


def repack_installed(dest: Path) -> Path:
    """A wheel of the installed mlci, made from the files its RECORD lists (what the original wheel held)."""
    dist = metadata.distribution("mlci")
    if dist.version != __version__:
        raise RunnerError(f"the installed mlci is {dist.version} but this code is {__version__}",
                          hint="reinstall mlci (pip install --force-reinstall mlci-*.whl)")
    site = Path(dist.locate_file(""))
    info = f"mlci-{dist.version}.dist-info"
    members: list[tuple[str, Path]] = []
    for entry in dist.files or []:
        name = entry.as_posix()
        if name.startswith("..") or "__pycache__" in entry.parts or name.endswith(".pyc"):
            continue  # console scripts (the installer writes them from entry_points.txt) and bytecode
        if entry.parts[0] == info and entry.name in INSTALLER_FILES:
            continue
        if entry.parts[0] not in ("mlci", info):
            # an editable install records only a .pth: it is no wheel, and a checkout builds one instead
            raise RunnerError(f"the installed mlci is not a wheel install ({name} in {site})",
                              hint="build the images from the mlci checkout, or `pip install mlci-*.whl`")
        members.append((name, site / entry))
    if not any(name == "mlci/__init__.py" for name, _ in members):
        raise RunnerError(f"the installed mlci in {site} lists no package files in its RECORD",
                          hint="reinstall mlci from its wheel (pip install --force-reinstall mlci-*.whl)")
    wheel = dest / f"mlci-{dist.version}-py3-none-any.whl"
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, path in sorted(members):
            data = path.read_bytes()
            archive.writestr(_entry(name), data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            writer.writerow([name, f"sha256={digest}", len(data)])
        writer.writerow([f"{info}/RECORD", "", ""])
        archive.writestr(_entry(f"{info}/RECORD"), record.getvalue())
    return wheel


def _entry(name: str) -> zipfile.ZipInfo:
    """A fixed date and mode: the same installed files make the same bytes."""
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.external_attr = 0o644 << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def content_hash(wheel: Path) -> str:
    """What the wheel installs (names and bytes, RECORD aside): equal for a build and a repack of the same code."""
    digest = hashlib.sha256()
    with zipfile.ZipFile(wheel) as archive:
        for name in sorted(archive.namelist()):
            if name.endswith(".dist-info/RECORD") or name.endswith(".dist-info/WHEEL"):
                continue  # RECORD lists the rest; WHEEL names the tool that packed it
            digest.update(name.encode() + b"\0" + archive.read(name) + b"\0")
    return digest.hexdigest()


def run_pip(args: list[str], *, what: str) -> None:
    """`python -m pip ARGS` of this interpreter; a failure is a RunnerError naming `what` and pip's last lines."""
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    done = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        raise RunnerError(f"pip could not {what or 'do it'} ({tail})",
                          hint="check that the package index is reachable, or fill the wheelhouse by hand "
                               "(docs/docker.md)")
