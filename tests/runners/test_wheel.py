"""mlci as a user gets it: `python -m build` makes an sdist and a wheel, and the wheel, installed into a
fresh venv outside the repository, renders the jobs, copies an example, builds the images and trains in them.

The fresh venv gets mlci from the wheel (`pip install --no-index --no-deps`) and mlci's dependencies
from this test's own environment (a .pth naming its site-packages): nothing is downloaded.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest
from conftest import ROOT
from skips import unavailable

from mlci import __version__
from mlci.runners import mlci_wheel
from mlci.runners.images import IMAGES, tag_for

# What an installed mlci needs besides its modules, as paths inside the package.
PACKAGE_DATA = [f"dockerfiles/{name}/Dockerfile" for name in IMAGES] + [
    "dockerfiles/make-base-image.sh", "py.typed",
    "jenkins_files/jobs/project.yaml", "jenkins_files/jobs/templates.yaml", "jenkins_files/jobs/defaults.yaml",
    *[f"jenkins_files/scripts/job{n}_{name}.sh"
      for n, name in enumerate(("fetch", "launch", "train", "check", "notify", "monitor"), 1)],
    *[f"examples/{name}/{file}" for name in ("mnist_cnn", "mnist_ann", "mnist_sklearn")
      for file in (f"{name}.py", "mlci.toml")],
]
# mlci's files as a hash: the same in the fresh venv and in the image means the same harness.
TREE_HASH = ("import hashlib, pathlib, mlci; root = pathlib.Path(mlci.__file__).parent; d = hashlib.sha256()\n"
             "for p in sorted(p for p in root.rglob('*') if p.is_file() and '__pycache__' not in p.parts):\n"
             "    d.update(str(p.relative_to(root)).encode() + p.read_bytes())\n"
             "print(d.hexdigest())")


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    """`python -m build` (sdist, then the wheel from it) of a copy of this checkout: the tree stays clean."""
    copy = tmp_path_factory.mktemp("checkout")
    for name in ("src", "jobs", "scripts", "models"):  # src/mlci links into jobs/, scripts/, models/
        shutil.copytree(ROOT / name, copy / name, symlinks=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, copy / name)
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(copy)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return out


@pytest.fixture(scope="module")
def installed(dist, tmp_path_factory) -> Path:
    """A fresh venv (outside the repository) with the wheel installed; returns its bin/ folder."""
    env_dir = tmp_path_factory.mktemp("fresh") / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # After the venv's own site-packages: the dependencies only (this venv's mlci, if editable, is a .pth
    # file there, which a plain path entry does not run).
    Path(site, "mlci-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    wheel = next(dist.glob("mlci-*.whl"))
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--disable-pip-version-check",
                    str(wheel)], check=True)
    return env_dir / "bin"


def outside(bin_dir: Path, *args: str, cwd: Path, check: bool = True, timeout: float = 900,
            **env: str) -> subprocess.CompletedProcess:
    """A command of the fresh venv, with no trace of this checkout (no PYTHONPATH, run outside it)."""
    clean = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    clean["PATH"] = f"{bin_dir}{os.pathsep}{clean.get('PATH', '')}"
    done = subprocess.run([str(bin_dir / args[0]), *args[1:]], cwd=cwd, env={**clean, **env}, capture_output=True,
                          text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


def test_the_sdist_and_the_wheel_hold_what_an_installed_mlci_needs(dist):
    wheel, = dist.glob("mlci-*.whl")
    sdist, = dist.glob("mlci-*.tar.gz")
    assert wheel.name == f"mlci-{__version__}-py3-none-any.whl" and sdist.name == f"mlci-{__version__}.tar.gz"
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = archive.read(f"mlci-{__version__}.dist-info/METADATA").decode()
        entry_points = archive.read(f"mlci-{__version__}.dist-info/entry_points.txt").decode()
    missing = [path for path in PACKAGE_DATA if f"mlci/{path}" not in names]
    assert not missing, f"the wheel lacks {missing}"
    assert {"mlci/__init__.py", "mlci/runners/images.py", "mlci/harness/train.py", "mlci/cli/example.py"} <= names
    assert f"Version: {__version__}\n" in metadata and "mlci = mlci.cli:main" in entry_points
    assert not [name for name in names if "__pycache__" in name or name.startswith(("tests/", "templates"))
                or "/templates/" in name]
    with tarfile.open(sdist) as archive:
        members = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    missing = [path for path in ["setup.cfg", "pyproject.toml", "README.md", "src/mlci/__init__.py",
                                 *[f"src/mlci/{path}" for path in PACKAGE_DATA]] if path not in members]
    assert not missing, f"the sdist lacks {missing}"


def test_the_version_lives_in_one_place_and_tags_the_images():
    assert "version = attr: mlci.__version__" in (ROOT / "setup.cfg").read_text()
    files = [*(ROOT / "src" / "mlci").rglob("*.py"), ROOT / "setup.cfg", ROOT / "pyproject.toml"]
    holders = [path.relative_to(ROOT).as_posix() for path in files if __version__ in path.read_text()]
    assert holders == ["src/mlci/__init__.py"]
    assert tag_for("sklearn") == f"mlci/sklearn:{__version__}"


@pytest.mark.slow
def test_the_installed_wheel_renders_the_jobs_copies_an_example_and_trains_it(installed, tmp_path):
    where = outside(installed, "python", "-c", "import mlci; print(mlci.__file__)", cwd=tmp_path).stdout
    assert where.startswith(str(installed.parent)), where  # the venv's mlci, not this checkout's
    rendered = outside(installed, "mlci", "jenkins", "render", "--out", str(tmp_path / "xml"), cwd=tmp_path).stdout
    assert "mlci-1-fetch" in rendered and "mlci-6-monitor" in rendered
    assert "mlci fetch" in (tmp_path / "xml" / "mlci-1-fetch.xml").read_text()  # job 1's script, from the wheel
    listed = outside(installed, "mlci", "example", cwd=tmp_path).stdout
    assert "mnist-cnn" in listed and "mnist-sklearn" in listed
    model = Path(outside(installed, "mlci", "example", "mnist-sklearn", cwd=tmp_path).stdout.strip())
    assert (tmp_path / model).is_file() and (tmp_path / "mnist_sklearn" / "mlci.toml").is_file()
    done = outside(installed, "mlci", "run", str(model), "--home", "store", "--runner", "local", "--max-trials", "1",
                   "--threshold", "0.5", "--no-notify", "-q", cwd=tmp_path)
    run_json, = (tmp_path / "store" / "runs").glob("*/run.json")
    assert json.loads(run_json.read_text())["status"] == "met", done.stdout + done.stderr


@pytest.mark.slow
def test_the_installed_mlci_repacks_itself_into_the_wheel_it_came_from(installed, dist, tmp_path):
    """The wheel an installed mlci puts into the images installs the same files as the wheel it came from,
    and as the wheel a clone builds: one content hash, so a clone and an agent share the images."""
    repacked = outside(installed, "python", "-c", "from pathlib import Path; from mlci.runners import mlci_wheel; "
                       f"print(mlci_wheel.mlci_wheel(Path({str(tmp_path)!r})))", cwd=tmp_path).stdout.strip()
    original, = dist.glob("mlci-*.whl")
    assert Path(repacked).name == original.name
    assert mlci_wheel.content_hash(Path(repacked)) == mlci_wheel.content_hash(original)
    from_checkout = mlci_wheel.build_from_checkout(ROOT, tmp_path / "checkout")
    assert mlci_wheel.content_hash(from_checkout) == mlci_wheel.content_hash(original)
    with zipfile.ZipFile(repacked) as archive:
        assert archive.testzip() is None
        assert not [name for name in archive.namelist() if name.endswith((".pyc", "INSTALLER", "direct_url.json"))]


@pytest.mark.docker
@pytest.mark.slow
def test_the_installed_wheel_builds_the_sklearn_image_and_trains_a_trial_in_it(installed, engine, docker_home,
                                                                               tmp_path):
    host = Path(os.environ.get("MLCI_WHEELHOUSE") or ROOT / ".cache" / "wheelhouse")
    requirements = sorted(w for w in (host / "base").glob("*.whl") if not w.name.startswith("mlci-"))
    pip_wheels = sorted((host / "tools").glob("pip-*.whl"))
    if not requirements or not pip_wheels:
        unavailable(f"no wheelhouse with mlci's requirements in {host}", "`make docker-ready` fills it")
    house = tmp_path / "wheelhouse"  # a private one: the fresh mlci writes its own wheel into it
    for wheel, folder in [*[(w, "base") for w in requirements], (pip_wheels[-1], "tools")]:
        (house / folder).mkdir(parents=True, exist_ok=True)
        try:
            os.link(wheel, house / folder / wheel.name)
        except OSError:
            shutil.copy2(wheel, house / folder / wheel.name)

    built = outside(installed, "mlci", "images", "build", "sklearn", "--force", "--wheelhouse", str(house),
                    cwd=tmp_path, PIP_NO_INDEX="1")
    assert f"mlci/sklearn:{__version__}" in built.stdout and "built in" in built.stdout, built.stdout + built.stderr
    image = engine.images.get(f"mlci/sklearn:{__version__}")
    assert image.labels["mlci.version"] == __version__ and image.labels["mlci.framework"] == "sklearn"
    inside = engine.containers.run(image.id, entrypoint=["python", "-c", TREE_HASH], remove=True,
                                   network_disabled=True).decode().strip()
    assert inside == outside(installed, "python", "-c", TREE_HASH, cwd=tmp_path).stdout.strip()

    model = Path(outside(installed, "mlci", "example", "mnist-sklearn", cwd=tmp_path).stdout.strip())
    outside(installed, "mlci", "run", str(model), "--home", str(docker_home), "--runner", "docker", "--max-trials",
            "1", "--threshold", "0.5", "--no-notify", "-q", cwd=tmp_path)
    trial = json.loads(next(docker_home.glob("runs/*/trials/0/trial.json")).read_text())
    assert trial["runner"] == "docker" and trial["image"] == "mlci/sklearn:latest" and trial["status"] == "succeeded"
    metrics = json.loads(next(docker_home.glob("runs/*/trials/0/metrics.json")).read_text())
    assert metrics["metric"] == "accuracy" and metrics["value"] >= 0.5, metrics
