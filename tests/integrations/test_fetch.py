"""`mlci fetch`: the snapshot it writes under the run store's src/ (who can read it, what it is keyed by)."""
from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from conftest import KNN_SOURCE, mlci, write_model
from mlci.core.store import RunStore

CONFIG = 'dataset = "digits"\nrunner = "local"\n'


def facts(done: subprocess.CompletedProcess) -> dict[str, str]:
    return dict(line.split("=", 1) for line in done.stdout.split())


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", "-c", "user.email=a@b", "-c", "user.name=a", *args], cwd=cwd, check=True,
                          capture_output=True, text=True).stdout.strip()


def snapshot_of(home: Path, model: str) -> Path:
    src = home / "src"
    folder = Path(model).parent
    while folder.parent != src:
        folder = folder.parent
    return folder


def assert_readable_by_all(folder: Path) -> None:
    for path in [folder, *folder.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        if path.is_dir():
            assert mode & 0o005 == 0o005, f"{path}: folder mode {oct(mode)} lacks o+rx"
        else:
            assert mode & 0o004, f"{path}: file mode {oct(mode)} lacks o+r"


def test_snapshot_of_a_plain_folder_is_readable_by_others(tmp_path, home):
    model = write_model(tmp_path / "m", KNN_SOURCE, "knn.py", CONFIG)
    (model.parent / "data").mkdir()
    (model.parent / "data" / "labels.txt").write_text("0 1 2\n")
    os.chmod(model, 0o600)
    old = os.umask(0o077)  # the umask the copy and the mkdir would follow
    try:
        done = mlci("fetch", str(model.parent), "--model", model.name, "--home", str(home), check=True)
    finally:
        os.umask(old)
    snapshot = snapshot_of(home, facts(done)["MODEL"])
    assert (snapshot / "data" / "labels.txt").exists()
    assert_readable_by_all(snapshot)


def test_snapshot_of_a_git_commit_is_readable_by_others(tmp_path, home):
    repo = tmp_path / "repo"
    write_model(repo, KNN_SOURCE, "knn.py", CONFIG)
    (repo / "lib").mkdir()
    (repo / "lib" / "helper.py").write_text("X = 1\n")
    git("init", "-q", cwd=repo)
    git("add", ".", cwd=repo)
    git("commit", "-qm", "model", cwd=repo)
    old = os.umask(0o077)  # tar -x follows it
    try:
        done = mlci("fetch", str(repo), "--model", "knn.py", "--home", str(home), check=True)
    finally:
        os.umask(old)
    snapshot = home / "src" / facts(done)["COMMIT"]
    assert (snapshot / "lib" / "helper.py").exists()
    assert_readable_by_all(snapshot)


def test_an_edited_plain_folder_gets_a_new_snapshot_and_run(tmp_path, home):
    model = write_model(tmp_path / "m", KNN_SOURCE, "model.py", CONFIG)
    first = facts(mlci("fetch", str(model.parent), "--home", str(home), check=True))
    assert facts(mlci("fetch", str(model.parent), "--home", str(home), check=True)) == first  # unchanged: same run
    model.write_text(model.read_text().replace('"n_neighbors": 60', '"n_neighbors": 7'))
    second = facts(mlci("fetch", str(model.parent), "--home", str(home), check=True))
    assert second["RUN_ID"] != first["RUN_ID"]
    assert second["MODEL"] != first["MODEL"]
    assert '"n_neighbors": 7' in Path(second["MODEL"]).read_text()
    assert '"n_neighbors": 60' in Path(first["MODEL"]).read_text()  # the first run's snapshot is left as it was
    assert "COMMIT" not in second


def test_an_edit_of_a_helper_file_in_a_plain_folder_is_a_new_run_that_trains_it(tmp_path, home):
    model = write_model(tmp_path / "m", KNN_SOURCE, "model.py", CONFIG)
    helper = model.parent / "settings.py"
    helper.write_text("K = 60\n")
    first = facts(mlci("fetch", str(model.parent), "--home", str(home), "--model", "model.py", check=True))
    helper.write_text("K = 7\n")  # the model file itself is unchanged
    second = facts(mlci("fetch", str(model.parent), "--home", str(home), "--model", "model.py", check=True))
    assert second["RUN_ID"] != first["RUN_ID"]
    run = RunStore(home).run(second["RUN_ID"])
    assert (Path(run.record().model_file).parent / "settings.py").read_text() == "K = 7\n"


def test_two_plain_folders_never_share_a_run(tmp_path, home):
    one = write_model(tmp_path / "one", KNN_SOURCE, "model.py", CONFIG)
    two = write_model(tmp_path / "two", KNN_SOURCE.replace('"uniform"', '"distance"'), "model.py", CONFIG)
    first = facts(mlci("fetch", str(one.parent), "--home", str(home), check=True))
    second = facts(mlci("fetch", str(two.parent), "--home", str(home), check=True))
    assert first["RUN_ID"] != second["RUN_ID"] and first["MODEL"] != second["MODEL"]
    assert Path(first["MODEL"]).read_text() == one.read_text()
    assert Path(second["MODEL"]).read_text() == two.read_text()


def models_repo(tmp_path: Path) -> tuple[Path, str]:
    """A repository with models/a/model.py (and its mlci.toml), models/b/other.py and models/c/model.py."""
    repo = tmp_path / "repo"
    write_model(repo / "models" / "a", KNN_SOURCE, "model.py", CONFIG)
    write_model(repo / "models" / "b", KNN_SOURCE.replace("60", "5"), "other.py", CONFIG)
    write_model(repo / "models" / "c", KNN_SOURCE.replace("60", "9"), "model.py", CONFIG)
    git("init", "-q", cwd=repo)
    git("add", ".", cwd=repo)
    git("commit", "-qm", "models", cwd=repo)
    return repo, git("rev-parse", "HEAD", cwd=repo)


def test_fetching_a_subfolder_of_a_repository_takes_the_model_from_that_folder(tmp_path, home):
    repo, sha = models_repo(tmp_path)
    done = facts(mlci("fetch", str(repo / "models" / "a"), "--home", str(home), check=True))
    snapshot = home / "src" / sha
    assert done["COMMIT"] == sha
    assert done["MODEL"] == str(snapshot / "models" / "a" / "model.py")
    assert (snapshot / "models" / "b" / "other.py").is_file()  # the whole commit, the model may import from it
    other = facts(mlci("fetch", str(repo / "models" / "b"), "--home", str(home), check=True))
    assert other["COMMIT"] == sha and other["MODEL"] == str(snapshot / "models" / "b" / "other.py")
    assert other["RUN_ID"] != done["RUN_ID"]
    third = facts(mlci("fetch", str(repo / "models" / "c"), "--home", str(home), check=True))
    assert third["MODEL"] == str(snapshot / "models" / "c" / "model.py")
    assert third["RUN_ID"] != done["RUN_ID"]  # same file name, same commit, another model


def test_model_option_is_relative_to_the_fetched_subfolder(tmp_path, home):
    repo, sha = models_repo(tmp_path)
    done = facts(mlci("fetch", str(repo / "models" / "b"), "--model", "other.py", "--home", str(home), check=True))
    assert done["MODEL"] == str(home / "src" / sha / "models" / "b" / "other.py") and done["COMMIT"] == sha
    missing = mlci("fetch", str(repo / "models" / "b"), "--model", "model.py", "--home", str(home))
    assert missing.returncode != 0
    [line] = missing.stderr.strip().splitlines()
    assert f"model.py: no such file in {repo / 'models' / 'b'}" in line and "relative to" in line


def test_an_untracked_folder_inside_a_repository_is_reported(tmp_path, home):
    repo, sha = models_repo(tmp_path)
    write_model(repo / "models" / "new", KNN_SOURCE, "model.py", CONFIG)
    done = mlci("fetch", str(repo / "models" / "new"), "--home", str(home))
    assert done.returncode != 0
    [line] = done.stderr.strip().splitlines()
    assert f"folder models/new is not in commit {sha[:12]}" in line and "git commit" in line
