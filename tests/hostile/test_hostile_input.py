"""Hostile input where it enters: run ids, mlci.toml, model files and fetch's source, ref and --model.

Every case: the documented exit code, one error line and no traceback, and the run store and the user's folder
unchanged (their files hashed before and after).
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from click.testing import CliRunner

from hostile_kit import RUN_ID, Said, Untouched, assert_refused, cli, make_store, write_model
from mlci.cli import main

# ----------------------------------------------------------------------------- run ids

BAD_IDS = ["../../other/runs/" + RUN_ID, "../" + RUN_ID, "/etc", "a/b", "..", ".", "-rf", "x\ny",
           "a" * 300, "run id with spaces"]


@pytest.fixture
def two_stores(tmp_path):
    """The store the command is pointed at, and another one a traversing id would reach."""
    model = write_model(tmp_path / "user")
    make_store(tmp_path / "store", model)
    make_store(tmp_path / "other", model)
    return tmp_path


@pytest.mark.parametrize("run_id", BAD_IDS)
def test_a_run_id_is_an_id_never_a_path(two_stores, run_id):
    with Untouched(two_stores / "store", two_stores / "other", two_stores / "user"):
        said = cli("status", "--run", run_id, "--home", two_stores / "store")
    assert_refused(said, 2, "is not a run id")


@pytest.mark.parametrize("command", [["history"], ["report"], ["check"], ["tweak"], ["launch"],
                                     ["wait", "--timeout", "1"], ["notify"], ["status", "--json"]])
def test_every_command_refuses_a_traversing_run_id(two_stores, command):
    with Untouched(two_stores / "store", two_stores / "other", two_stores / "user"):
        said = cli(*command, "--run", f"../../other/runs/{RUN_ID}", "--home", two_stores / "store")
    assert_refused(said, 2, "is not a run id")


def test_run_id_from_the_environment_is_checked_too(two_stores):
    with Untouched(two_stores / "store", two_stores / "other"):
        said = cli("status", "--home", two_stores / "store", env={"RUN_ID": f"../../other/runs/{RUN_ID}"})
    assert_refused(said, 2, "is not a run id")


def test_an_unknown_but_valid_id_names_the_known_runs(two_stores):
    with Untouched(two_stores / "store"):
        said = cli("status", "--run", "nope-0000000000", "--home", two_stores / "store")
    assert_refused(said, 2, "not found", RUN_ID)


# ----------------------------------------------------------------------------- mlci.toml

BAD_CONFIGS = {
    "max_trials = true": ("max_trials = true\n", "max_trials"),
    "max_minutes = inf": ("max_minutes = inf\n", "max_minutes"),
    "max_minutes = nan": ("max_minutes = nan\n", "max_minutes"),
    "max_minutes = -1": ("max_minutes = -1\n", "max_minutes"),
    "threshold = 1e308": ("threshold = 1e308\n", "threshold"),
    "threshold = -0.5": ("threshold = -0.5\n", "threshold"),
    "threshold = nan": ("threshold = nan\n", "threshold"),
    "threshold = true": ("threshold = true\n", "threshold"),
    "seed = true": ("seed = true\n", "seed"),
    "seed = -1": ("seed = -1\n", "seed"),
    "parallel = 0": ("parallel = 0\n", "parallel"),
    "max_trials = 10**12": ("max_trials = 1000000000000\n", "max_trials"),
    "max_trials = 'ten'": ('max_trials = "ten"\n', "max_trials"),
    "unknown key": ("colour = 'blue'\n", "colour"),
    "metric": ('metric = "bogus"\n', "metric"),
    "runner": ('runner = "kubernetes"\n', "runner"),
    "dataset": ('dataset = "imagenet"\n', "dataset"),
    "not TOML": ("threshold = = 0.8\n", "not valid TOML"),
    "1000-deep array": ("x = " + "[" * 1000 + "]" * 1000 + "\n", "nested too deeply"),
    "1000-deep inline table": ("x = " + "{a = " * 1000 + "1" + "}" * 1000 + "\n", "mlci.toml"),
    "webhook_url no scheme": ('[notify]\nwebhook_url = "hooks.example.com/x"\n', "webhook_url"),
    "webhook_url bad IPv6": ('[notify]\nwebhook_url = "http://[::1"\n', "webhook_url"),
    "webhook_url bad port": ('[notify]\nwebhook_url = "http://example.com:99999/x"\n', "webhook_url"),
    "webhook_url no host": ('[notify]\nwebhook_url = "https:///x"\n', "webhook_url"),
    "webhook_url with a space": ('[notify]\nwebhook_url = "https://example.com/a b"\n', "webhook_url"),
    "smtp_port = 70000": ("[notify]\nsmtp_port = 70000\n", "smtp_port"),
    "smtp_port = true": ("[notify]\nsmtp_port = true\n", "smtp_port"),
    "to with a newline": ('[notify]\nto = ["a@example.com\\nBcc: b@example.com"]\n', "to"),
    "timeout = inf": ("[notify]\ntimeout = inf\n", "timeout"),
    "memory": ('[resources]\nmemory = "lots"\n', "memory"),
    "cpus = nan": ("[resources]\ncpus = nan\n", "cpus"),
    "heartbeat_timeout = inf": ("[monitor]\nheartbeat_timeout = inf\n", "heartbeat_timeout"),
    "image not a string": ("[images]\nxgboost = 5\n", "images"),
    "space step overflow (int)": ('[space]\nn_neighbors = {type = "int", low = 1, high = 8, step = 100000000000}\n',
                                  "step"),
    "space step overflow (float)": ('[space]\nalpha = {type = "float", low = 0.0, high = 1.0, step = 1e308}\n', "step"),
    "space step underflow": ('[space]\nalpha = {type = "float", low = 0.0, high = 1.0, step = 1e-320}\n', "step"),
    "space high 1e308": ('[space]\nalpha = {type = "float", low = -1e308, high = 1e308}\n', "low"),
    "space high 10**30": ('[space]\nn = {type = "int", low = 1, high = 1000000000000000000000000000}\n', "high"),
    "space low inf": ('[space]\nalpha = {type = "float", low = -inf, high = 1.0}\n', "low"),
    "space step inf": ('[space]\nalpha = {type = "float", low = 0.0, high = 1.0, step = inf}\n', "step"),
    "space step 0": ('[space]\nn = {type = "int", low = 1, high = 8, step = 0}\n', "step"),
    "space fractional int step": ('[space]\nn = {type = "int", low = 1, high = 8, step = 0.5}\n', "step"),
    "space type": ('[space]\nn = {type = "complex", low = 1, high = 8}\n', "type"),
    "space not a table": ("[space]\nn = 5\n", "table"),
    "space low > high": ('[space]\nn = {type = "int", low = 9, high = 1}\n', "low"),
    "space empty choices": ('[space]\nn = {type = "categorical", choices = []}\n', "choices"),
}


@pytest.mark.parametrize("name", list(BAD_CONFIGS))
def test_a_bad_config_is_one_line_exit_2_before_the_store_is_touched(tmp_path, name):
    text, needle = BAD_CONFIGS[name]
    model = write_model(tmp_path / "user", config='strategy = "ladder"\n' + text
                        if not text.startswith("[") else 'dataset = "digits"\n' + text)
    home = tmp_path / "store"
    with Untouched(tmp_path / "user"):
        said = cli("run", model, "--home", home, "-q", "--no-notify")
    assert_refused(said, 2, needle)
    assert not home.exists(), "a refused config created the run store"


def test_invalid_utf8_in_the_config_is_one_line(tmp_path):
    model = write_model(tmp_path / "user", config=None)
    (tmp_path / "user" / "mlci.toml").write_bytes(b"threshold = 0.8\n\xff\xfe = 1\n")
    with Untouched(tmp_path / "user"):
        said = cli("run", model, "--home", tmp_path / "store", "-q")
    assert_refused(said, 2, "mlci.toml")


def test_a_config_that_is_a_folder_is_one_line(tmp_path):
    model = write_model(tmp_path / "user", config=None)
    (tmp_path / "user" / "conf").mkdir()
    with Untouched(tmp_path / "user"):
        said = cli("run", model, "--config", tmp_path / "user" / "conf", "--home", tmp_path / "store", "-q")
    assert_refused(said, 2, "config file not found")


@pytest.mark.parametrize("option, value", [("--max-minutes", "inf"), ("--max-minutes", "nan"),
                                           ("--threshold", "nan"), ("--threshold", "1e308"),
                                           ("--max-trials", "0"), ("--seed", "-5")])
def test_bad_numbers_on_the_command_line_are_refused(tmp_path, option, value):
    model = write_model(tmp_path / "user")
    with Untouched(tmp_path / "user"):
        said = cli("run", model, option, value, "--home", tmp_path / "store", "-q")
    assert_refused(said, 2, option.lstrip("-").replace("-", "_"))


# ----------------------------------------------------------------------------- model files

MODEL_FILES = {
    "empty": (b"", 4),
    "binary": (bytes(range(256)) * 8, 4),
    "invalid utf-8": (b"import sklearn\n\xff\xfe\xfd = 1\n", None),
    "no framework": (b"print('hello')\n", 4),
    "only a comment": (b"# build_model(hp)\n", 4),
    "NUL bytes": (b"import keras\x00\x00\n", None),
}


@pytest.mark.parametrize("name", list(MODEL_FILES))
def test_odd_model_files_are_detected_or_refused_in_one_line(tmp_path, name):
    content, code = MODEL_FILES[name]
    folder = tmp_path / "user"
    folder.mkdir()
    (folder / "model.py").write_bytes(content)
    with Untouched(folder):
        said = cli("detect", folder / "model.py")
    assert "Traceback" not in said.stdout + said.stderr
    if code is not None or said.code != 0:
        assert_refused(said, code or said.code)
        assert said.code in (2, 4)


def test_a_missing_model_file_is_exit_2(tmp_path):
    said = cli("run", tmp_path / "nope.py", "--home", tmp_path / "store")
    assert_refused(said, 2, "model file not found")
    assert not (tmp_path / "store").exists()


def test_a_symlink_loop_as_the_model_file_is_one_line(tmp_path):
    folder = tmp_path / "user"
    folder.mkdir()
    (folder / "a.py").symlink_to(folder / "b.py")
    (folder / "b.py").symlink_to(folder / "a.py")
    with Untouched(folder):
        said = cli("detect", folder / "a.py")
    assert_refused(said, said.code)
    assert said.code in (2, 4)


def test_a_folder_with_no_model_is_exit_4(tmp_path):
    folder = tmp_path / "user"
    folder.mkdir()
    (folder / "README.md").write_text("nothing here\n")
    with Untouched(folder):
        said = cli("detect", folder)
    assert_refused(said, 4)


# ----------------------------------------------------------------------------- fetch: source, --ref, --model


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path) -> Path:
    """A real git repository with one committed model."""
    folder = tmp_path / "repo"
    write_model(folder)
    git("init", "-q", "-b", "main", cwd=folder)
    git("add", "-A", cwd=folder)
    git("-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-q", "-m", "model", cwd=folder)
    return folder


@pytest.mark.parametrize("ref", ["--output=OUT", "-x", "--help", "-", "main\nRUN_ID=evil", "main\x00", "",
                                 "no-such-branch"])
def test_a_ref_is_never_an_option_nor_a_line(repo, tmp_path, ref):
    ref = ref.replace("OUT", str(tmp_path / "injected"))
    with Untouched(repo):
        said = cli("fetch", repo, f"--ref={ref}", "--home", tmp_path / "store")
    assert_refused(said, 2)
    assert not (tmp_path / "injected").exists(), "git took the ref as an option"
    assert not (tmp_path / "store" / "runs").exists()


@pytest.mark.parametrize("source", ["--upload-pack=touch OUT", "-c", "ext::sh -c touch% OUT"])
def test_a_source_is_never_an_option(tmp_path, source):
    source = source.replace("OUT", str(tmp_path / "injected"))
    said = cli("fetch", "--home", tmp_path / "store", "--", source)
    assert_refused(said, 2)
    assert not (tmp_path / "injected").exists()


@pytest.mark.parametrize("model", ["../outside.py", "/etc/passwd", "../../../../etc/passwd", "sub/../../outside.py",
                                   "missing.py", "link.py"])
def test_model_stays_inside_the_snapshot(repo, tmp_path, model):
    (tmp_path / "outside.py").write_text((repo / "model.py").read_text())
    (repo / "link.py").symlink_to(tmp_path / "outside.py")
    git("add", "link.py", cwd=repo)
    git("-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-q", "-m", "link", cwd=repo)
    with Untouched(repo, tmp_path / "outside.py"):
        said = cli("fetch", repo, "--model", model, "--home", tmp_path / "store")
    assert_refused(said, 2)
    assert not (tmp_path / "store" / "runs").exists()


@pytest.mark.parametrize("by_name", [True, False], ids=["--model", "detected"])
def test_a_committed_file_name_with_a_newline_cannot_inject_a_property(repo, tmp_path, by_name):
    name = "model\nRUN_ID=evil.py"
    (repo / "model.py").rename(repo / name)
    git("add", "-A", cwd=repo)
    git("-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-q", "-m", "odd name", cwd=repo)
    properties = tmp_path / "mlci.properties"
    with Untouched(repo):
        said = cli("fetch", repo, *(["--model", name] if by_name else []), "--home", tmp_path / "store",
                   "--properties", properties)
    assert_refused(said, 2, "control character" if by_name else "properties")
    assert not (tmp_path / "store" / "runs").exists()
    assert not properties.exists()
    assert "RUN_ID=evil" not in said.stdout


def test_decide_refuses_a_run_id_that_would_inject_a_property(tmp_path):
    status = tmp_path / "status.json"
    status.write_text('{"run_id": "x\\nNEXT_TRIAL=99", "status": "running", "finished": false, "event": null, '
                      '"next_trial": 3}')
    said = cli("jenkins", "decide", status, "--retrain", tmp_path / "retrain.properties")
    assert_refused(said, 2, "properties")
    assert not (tmp_path / "retrain.properties").exists()


def test_fetch_writes_plain_properties(repo, tmp_path):
    """The control case: a plain repository gives three KEY=VALUE lines and nothing else."""
    properties = tmp_path / "mlci.properties"
    said = cli("fetch", repo, "--home", tmp_path / "store", "--properties", properties)
    assert said.code == 0, said.stderr
    keys = [line.split("=", 1)[0] for line in properties.read_text().splitlines()]
    assert keys == ["RUN_ID", "COMMIT", "MODEL"]


# ----------------------------------------------------------------------------- git hook settings


@pytest.mark.parametrize("url", ["http://[::1", "http://jenkins:99999/", "jenkins.example.com", "http:///x",
                                 "http://admin:s3cr3t-T0KEN@[::1/"])
def test_a_malformed_jenkins_url_for_the_hook_is_one_line(repo, url):
    with Untouched(repo):
        said = cli("hook", "install", repo, "--jenkins", url)
    line = assert_refused(said, 2, "--jenkins")
    assert "s3cr3t" not in line


def test_post_receive_with_a_malformed_jenkins_url_is_one_line(repo):
    sha = git("rev-parse", "HEAD", cwd=repo)
    result = CliRunner().invoke(main, ["hook", "post-receive", "--repo", str(repo), "--jenkins",
                                       "http://admin:s3cr3t-T0KEN@[::1/"], input=f"{'0' * 40} {sha} refs/heads/main\n")
    said = Said(result.exit_code, result.stdout, result.stderr)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    line = assert_refused(said, 2, "--jenkins")
    assert "s3cr3t" not in said.stderr and "s3cr3t" not in line


# ----------------------------------------------------------------------------- numbers on other commands


@pytest.mark.parametrize("args", [["wait", "--timeout", "nan"], ["wait", "--timeout", "-1"], ["wait", "--timeout", "inf"],
                                  ["check", "--trial", "-1"], ["wait", "--trial", "99999999999999999999"],
                                  ["notify", "--event", "trial-failed", "--trial", "-3"]])
def test_bad_numbers_for_a_run_are_usage_errors(two_stores, args):
    with Untouched(two_stores / "store", two_stores / "user"):
        said = cli(*args, "--run", RUN_ID, "--home", two_stores / "store")
    assert_refused(said, 2, args[-2])
