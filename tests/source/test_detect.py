"""Model-kind detection (issue 3): the labelled cases, every user-caused error's message, the CLI, and
property tests that random bytes and random Python never crash it."""
from __future__ import annotations

import json
import random
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlci.cli import main
from mlci.source._detect_source import decode, normalize
from mlci.core.config import validate_config
from mlci.source.detect import Detection, detect
from mlci.core.errors import EXIT_DETECTION, EXIT_USAGE, DetectionError, UsageError
from skips import require_module

CASES_DIR = Path(__file__).parent / "detect_cases"
CASES = tomllib.loads((CASES_DIR / "cases.toml").read_text(encoding="utf-8"))["case"]


def _case_id(case: dict) -> str:
    return case["file"].replace("/", "-")


def test_the_table_has_at_least_40_cases_and_every_file_exists():
    assert len(CASES) >= 40
    for case in CASES:
        assert (CASES_DIR / case["file"]).exists(), case["file"]
    listed = {case["file"].split("/")[0] for case in CASES}
    on_disk = {p.name for p in CASES_DIR.iterdir() if p.name != "cases.toml"}
    assert on_disk <= listed, f"files without a row in cases.toml: {sorted(on_disk - listed)}"


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_case(case: dict):
    path = CASES_DIR / case["file"]
    if "error" in case:
        with pytest.raises(DetectionError) as info:
            detect(path)
        assert case["error"] in str(info.value)
        assert info.value.exit_code == EXIT_DETECTION
        return
    detection = detect(path)
    assert (detection.framework, detection.architecture) == (case["framework"], case["architecture"])
    assert detection.mode == case.get("mode", "script")
    assert detection.fallback is case.get("fallback", False)
    if "entry" in case:
        assert detection.entry.name == case["entry"]
    if "evidence" in case:
        assert any(case["evidence"] in item.why for item in detection.evidence), detection.evidence


@pytest.mark.parametrize("case", [c for c in CASES if "error" not in c], ids=_case_id)
def test_evidence_points_at_real_lines(case: dict):
    """The first evidence item names a file and a line whose text is the code shown."""
    detection = detect(CASES_DIR / case["file"])
    first = detection.evidence[0]
    assert first.line > 0 and first.text and first.why
    if detection.entry.suffix == ".py" and first.file == detection.entry.name and not detection.fallback:
        text, _ = decode(detection.entry.read_bytes(), detection.entry.name)
        lines = normalize(text).split("\n")
        assert lines[first.line - 1].strip()[:160] == first.text


def test_decided_by_what_is_trained_with_the_fit_line_in_the_evidence():
    detection = detect(CASES_DIR / "sklearn_split_with_keras.py")
    assert detection.evidence[0].why == "trains keras.Sequential (fit at line 17)"
    assert detection.evidence[0].line == 13


def test_notebook_evidence_names_the_cell():
    detection = detect(CASES_DIR / "notebook_magics.ipynb")
    first = detection.evidence[0]
    assert (first.file, first.line, first.text) == ("notebook_magics.ipynb[cell 5]", 1,
                                                    "model = tf.keras.Sequential([")
    assert first.why == "trains keras.Sequential (fit at notebook_magics.ipynb[cell 6] line 2)"


def test_syntax_error_is_said_in_the_evidence():
    detection = detect(CASES_DIR / "syntax_error.py")
    note = next(item for item in detection.evidence if "not valid Python 3" in item.why)
    assert note.line == 6 and "never closed" in note.why


def test_token_scan_is_said_in_the_evidence():
    detection = detect(CASES_DIR / "unparsable_token_scan.py")
    assert detection.fallback
    assert any(item.why.startswith("fallback to a token scan: no AST could be built") for item in detection.evidence)


@pytest.mark.slow  # writes and scans 10 MB: several seconds on a shared machine
def test_ten_megabyte_file_is_read_by_token_scan(tmp_path: Path):
    path = tmp_path / "big.py"
    head = (CASES_DIR / "keras_seq_cnn.py").read_text()
    filler = "WEIGHTS_%d = [0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]\n"
    body = "".join(filler % i for i in range(120_000))
    path.write_text(head + body)
    assert path.stat().st_size > 10_000_000
    detection = detect(path)
    assert (detection.framework, detection.architecture, detection.fallback) == ("keras", "cnn", True)
    assert any("over the 2 MB AST limit" in item.why for item in detection.evidence)


# ---------------------------------------------------------------- errors a user can cause: the messages

def test_missing_path_is_a_usage_error(tmp_path: Path):
    with pytest.raises(UsageError) as info:
        detect(tmp_path / "nope.py")
    assert str(info.value) == (f"{tmp_path / 'nope.py'}: no such file or folder; pass a model .py file, a notebook "
                               "or a folder")
    assert info.value.exit_code == EXIT_USAGE


def test_unsupported_message_names_what_was_found_and_how_to_map_it():
    with pytest.raises(DetectionError) as info:
        detect(CASES_DIR / "xgboost_model.py")
    assert str(info.value) == (
        f"{CASES_DIR / 'xgboost_model.py'}: unsupported model code: it trains xgboost.XGBClassifier (line 6); "
        "mlci has images for scikit-learn, Keras and PyTorch; to run it anyway map an image in mlci.toml: "
        "[images] xgboost = \"your/image:tag\"")


def test_unsupported_code_mapped_in_images_is_detected_with_that_image(tmp_path: Path):
    (tmp_path / "boost.py").write_bytes((CASES_DIR / "xgboost_model.py").read_bytes())
    (tmp_path / "mlci.toml").write_text('[images]\nxgboost = "team/xgboost:2.0"\n')
    detection = detect(tmp_path / "boost.py")
    assert (detection.framework, detection.architecture, detection.found, detection.image_name) == (
        "unsupported", "classical", "xgboost", "team/xgboost:2.0")
    config = validate_config({"images": {"xgboost": "other/xgb:1"}})
    assert detect(tmp_path / "boost.py", config=config).image_name == "other/xgb:1"


def test_mapped_unsupported_code_says_its_architecture_and_the_library_that_trains_most(tmp_path: Path):
    """What `mlci detect --json` tells the image mapped for a library mlci has no image of."""
    (tmp_path / "mlci.toml").write_text('[images]\nflax = "team/jax:0.4"\nlightgbm = "team/lgbm:4"\n'
                                        'xgboost = "team/xgb:2"\n')
    (tmp_path / "flax_mlp.py").write_text(
        "import flax.linen as nn\nimport jax\n\n\nclass MLP(nn.Module):\n    @nn.compact\n"
        "    def __call__(self, x):\n        return nn.Dense(10)(nn.relu(nn.Dense(128)(x)))\n\n\n"
        "params = MLP().init(jax.random.PRNGKey(0), x_train[:1])\n")
    flax = detect(tmp_path / "flax_mlp.py")
    assert (flax.framework, flax.architecture, flax.found, flax.image_name) == ("unsupported", "ann", "flax",
                                                                                "team/jax:0.4")
    (tmp_path / "boosters.py").write_text(
        "import lightgbm as lgb\nimport xgboost as xgb\n\n"
        "reference = xgb.XGBClassifier().fit(x_train, y_train)\n"
        "fast = lgb.LGBMClassifier(n_estimators=200).fit(x_train, y_train)\n"
        "deep = lgb.LGBMClassifier(num_leaves=63).fit(x_train, y_train)\n")
    boosters = detect(tmp_path / "boosters.py")  # two LightGBM models, one XGBoost: LightGBM's image
    assert (boosters.framework, boosters.architecture, boosters.found, boosters.image_name) == (
        "unsupported", "classical", "lightgbm", "team/lgbm:4")


@pytest.mark.parametrize("case, line, why", [
    ("timedistributed_pool_lstm.py", 9, "LSTM layer: rnn"),
    ("applications_resnet.py", 3, "ResNet50 model: cnn"),
    ("pooling_only_dense.py", 6, "AveragePooling2D layer: cnn (pooling without convolution)"),
    ("cnn_lstm.py", 6, "Conv1D layer: cnn"),
    ("keras_and_torch_one_each.py", 6, "Dense layer: ann"),
])
def test_the_layer_that_decides_the_architecture_is_named_at_its_line(case, line, why):
    assert (line, why) in [(item.line, item.why) for item in detect(CASES_DIR / case).evidence]


def test_image_comes_from_config():
    config = validate_config({"images": {"keras": "registry.local/keras:2.21", "torch": "pt:2"}})
    assert detect(CASES_DIR / "keras_seq_cnn.py", config=config).image_name == "registry.local/keras:2.21"
    detection = detect(CASES_DIR / "torch_linear.py", config=config)
    assert detection.image(config.images) == "pt:2"
    assert detect(CASES_DIR / "torch_linear.py").image_name == "mlci/torch:latest"  # the default PyTorch image


def test_binary_and_empty_messages(tmp_path: Path):
    png = tmp_path / "model.py"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(DetectionError) as info:
        detect(png)
    assert str(info.value) == ("model.py: is a PNG image, not Python source; point mlci at the model's .py file "
                               "or notebook (check what was committed)")
    empty = tmp_path / "empty.py"
    empty.write_bytes(b"\xef\xbb\xbf\r\n")
    with pytest.raises(DetectionError) as info:
        detect(empty)
    assert str(info.value) == ("empty.py: the file is empty; commit the model code: a .py file or notebook that "
                               "builds and trains a model")


def test_notebook_without_code_cells(tmp_path: Path):
    path = tmp_path / "notes.ipynb"
    path.write_text(json.dumps({"cells": [{"cell_type": "markdown", "source": "# Conv2D"}], "nbformat": 4}))
    with pytest.raises(DetectionError) as info:
        detect(path)
    assert str(info.value) == ("notes.ipynb: the notebook has no code cells; add the code that builds and trains "
                               "the model")


def test_folder_errors(tmp_path: Path):
    with pytest.raises(DetectionError) as info:
        detect(tmp_path)
    assert str(info.value) == (f"{tmp_path}: no .py file or notebook in the folder; point mlci at the model file, "
                               "or commit it to this folder")
    (tmp_path / "mlci.toml").write_text('entry = "missing.py"\n')
    (tmp_path / "a.py").write_text("import os\n")
    with pytest.raises(DetectionError) as info:
        detect(tmp_path)
    assert str(info.value) == (f"{tmp_path}/mlci.toml: entry = 'missing.py' names no file in {tmp_path}; "
                               "set entry to the model file, relative to the folder")
    (tmp_path / "mlci.toml").unlink()
    (tmp_path / "b.py").write_text("import sys\n")
    with pytest.raises(DetectionError) as info:
        detect(tmp_path)
    assert str(info.value) == (f"{tmp_path}: no file in the folder trains a model (looked at a.py, b.py); name the "
                               f"entry in {tmp_path}/mlci.toml: entry = \"<file>.py\"")


def test_ambiguous_folder_message():
    folder = CASES_DIR / "folder_ambiguous"
    with pytest.raises(DetectionError) as info:
        detect(folder)
    assert str(info.value) == (f"{folder}: several files train a model (a.py, b.py); name the entry in "
                               f"{folder}/mlci.toml: entry = \"a.py\"")


def test_bad_image_mapping_is_a_config_error(tmp_path: Path):
    from mlci.core.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        validate_config({"images": {"xgboost": ""}}, "mlci.toml")
    assert "images.xgboost must be an image name" in str(info.value)


# ---------------------------------------------------------------- the CLI

def test_cli_json():
    result = CliRunner().invoke(main, ["detect", str(CASES_DIR / "keras_seq_cnn.py"), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["framework"] == "keras" and data["architecture"] == "cnn" and data["image"] == "mlci/keras:latest"
    assert data["mode"] == "script" and data["fallback"] is False
    assert data["evidence"][0] == {"file": "keras_seq_cnn.py", "line": 8, "text": "model = Sequential()",
                                   "why": "trains keras.Sequential (fit at line 14)"}


def test_cli_text_and_config_option(tmp_path: Path):
    config = tmp_path / "ci.toml"
    config.write_text('[images]\nsklearn = "corp/sk:1"\n')
    result = CliRunner().invoke(main, ["detect", str(CASES_DIR / "crlf.py"), "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "framework     sklearn" in result.output
    assert "image         corp/sk:1" in result.output
    assert "crlf.py:5  trains sklearn.SVC (fit at line 6)" in result.output


def test_cli_exit_codes():
    result = CliRunner().invoke(main, ["detect", str(CASES_DIR / "plain_numpy.py")])
    assert result.exit_code == EXIT_DETECTION
    assert "mlci: error: " in result.output and "[images] numpy =" in result.output
    result = CliRunner().invoke(main, ["detect", str(CASES_DIR / "missing.py"), "--json"])
    assert result.exit_code == EXIT_USAGE
    assert json.loads(result.stdout) == {"error": f"{CASES_DIR / 'missing.py'}: no such file or folder; pass a "
                                                  "model .py file, a notebook or a folder", "exit_code": 2}
    assert "mlci: error: " in result.stderr
    result = CliRunner().invoke(main, ["detect", str(CASES_DIR / "keras_seq_cnn.py"), "--config", "/nonexistent.toml"])
    assert result.exit_code == EXIT_USAGE


# ---------------------------------------------------------------- properties: never crash

def _outcome(path: Path) -> Detection | DetectionError:
    try:
        return detect(path)
    except DetectionError as err:
        return err


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=3000))
def test_random_bytes_never_crash(tmp_path: Path, data: bytes):
    path = tmp_path / "random.py"
    path.write_bytes(data)
    result = _outcome(path)
    if isinstance(result, Detection):
        assert result.framework in ("sklearn", "keras", "torch", "unsupported")
        assert result.architecture in ("cnn", "ann", "rnn", "classical")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=2000))
def test_random_bytes_as_notebook_never_crash(tmp_path: Path, data: bytes):
    path = tmp_path / "random.ipynb"
    path.write_bytes(data)
    _outcome(path)


@pytest.mark.slow  # generating programs from the grammar takes seconds
@pytest.mark.filterwarnings("ignore::SyntaxWarning")  # hypothesmith compiles what it writes
def test_random_python_never_crashes(tmp_path: Path):
    """hypothesmith (a dev extra: CI fails without it) writes syntactically valid but arbitrary Python."""
    hypothesmith = require_module("hypothesmith", "dev")

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(source=hypothesmith.from_grammar())
    def check(source: str):
        path = tmp_path / "random.py"
        path.write_bytes(source.encode("utf-8", "surrogatepass"))
        _outcome(path)

    check()


NOISE = st.sampled_from([
    "# model.add(Conv2D(32, 3))  Convert later\n", '"""LSTM and Conv2D are only words here."""\n',
    "s = 'import torch; nn.Conv2d(1, 2, 3)'\n", "x = 1 +\n", 'print "python 2"\n', "%matplotlib inline\n",
    "def f(:\n", "\t\tindented = True\n", "import numpy as np\n", "y = np.zeros(3)\n", "\r\n", "\x0c\n",
    "from sklearn.metrics import accuracy_score\n", "class C:\n    pass\n", "'''unterminated\n",
])
KERAS_DENSE = ["from tensorflow import keras\n",
               "model = keras.Sequential([keras.layers.Dense(8), keras.layers.Dense(2)])\n",
               "model.compile('adam', 'mse')\n", "model.fit(x, y)\n"]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(noise=st.lists(NOISE, max_size=8), seed=st.integers(0, 2**16))
def test_python_with_noise_never_crashes_and_comments_never_decide(tmp_path: Path, noise: list[str], seed: int):
    """A dense Keras script with noise lines spliced between its statements: never a crash, and when
    the noise is only comments or strings, the answer stays keras/ann."""
    rng = random.Random(seed)
    lines = list(KERAS_DENSE)
    for item in noise:
        lines.insert(rng.randrange(len(lines) + 1), item)
    path = tmp_path / "noisy.py"
    path.write_text("".join(lines))
    result = _outcome(path)
    harmless = all(item.startswith(("#", '"""', "s = ", "import numpy", "y = np", "from sklearn", "class C",
                                    "\r", "\x0c")) for item in noise)
    if harmless:
        assert isinstance(result, Detection)
        assert (result.framework, result.architecture) == ("keras", "ann")


CASE_FILES = sorted(p for p in CASES_DIR.rglob("*") if p.is_file() and p.name != "cases.toml")
SPLICES = [b"(", b")", b"\n", b"    ", b"\t", b":", b'"""', b"'", b"#", b"\\", b"\r", b"\x00", b"\xff", b"print ",
           b"[", b"{", b"lambda", b"\xe9", b"%%bash\n", b"\"cells\""]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(source=st.sampled_from(CASE_FILES), edits=st.lists(
    st.tuples(st.sampled_from(["cut", "splice", "truncate"]), st.floats(0, 1), st.sampled_from(SPLICES)),
    min_size=1, max_size=6))
def test_damaged_cases_never_crash(tmp_path: Path, source: Path, edits: list):
    """Real-looking code with bytes cut, inserted or truncated: a Detection or a DetectionError, nothing else."""
    data = bytearray(source.read_bytes())
    for operation, where, splice in edits:
        position = int(where * len(data))
        if operation == "cut":
            del data[position:position + 20]
        elif operation == "splice":
            data[position:position] = splice
        else:
            del data[position:]
    path = tmp_path / f"damaged{source.suffix or '.py'}"
    path.write_bytes(bytes(data))
    _outcome(path)


def test_folder_with_several_trainers_prefers_the_model_module_and_says_so(tmp_path: Path):
    (tmp_path / "baseline.py").write_bytes((CASES_DIR / "crlf.py").read_bytes())
    (tmp_path / "model.py").write_bytes((CASES_DIR / "module_build_model_keras.py").read_bytes())
    (tmp_path / "plots.py").write_text("import matplotlib.pyplot as plt\nplt.plot([1, 2])\n")
    detection = detect(tmp_path)
    assert (detection.entry.name, detection.framework, detection.mode) == ("model.py", "keras", "module")
    assert detection.evidence[-1].why == (f"entry of {tmp_path.name}/: the only one defining build_model of the "
                                          "files that train (also baseline.py); set entry in mlci.toml to choose")


def test_a_pipe_is_refused_without_blocking(tmp_path: Path):
    import os

    fifo = tmp_path / "model.py"
    os.mkfifo(fifo)
    with pytest.raises(DetectionError) as info:
        detect(fifo)
    assert str(info.value) == (f"{fifo}: is not a regular file (a device, socket or pipe); pass a model .py file, "
                               "a notebook or a folder")


def test_detection_never_imports_a_framework_or_the_users_code(tmp_path: Path):
    """Pure AST: after detecting a Keras, a PyTorch and a side-effecting file, no framework is loaded."""
    import os
    import subprocess
    import sys

    marker = tmp_path / "ran.txt"
    side_effect = tmp_path / "side_effect.py"
    side_effect.write_text(f"open({str(marker)!r}, 'w').write('ran')\nimport tensorflow as tf\n"
                           "tf.keras.Sequential([tf.keras.layers.Dense(1)]).fit(x, y)\n")
    paths = [str(CASES_DIR / "keras_seq_cnn.py"), str(CASES_DIR / "torch_linear.py"), str(side_effect)]
    code = ("import sys\nfrom mlci.source.detect import detect\n"
            f"for path in {paths!r}:\n"
            "    detect(path)\n"
            "print(sorted(m for m in ('tensorflow', 'keras', 'torch') if m in sys.modules))\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert done.stdout.strip() == "[]"
    assert not marker.exists()


# ----------------------------------------------------------------------------- the architecture a layer name implies


@pytest.mark.parametrize("name, expected", [
    *[(n, ("cnn", False)) for n in ("Conv2D", "conv1d", "SeparableConv2D", "DepthwiseConv2D", "AtrousConvolution2D",
                                     "Deconvolution2D", "LocallyConnected2D", "LazyConv2d", "separable_conv2d",
                                     "depthwise_conv2d", "Convolution1D")],
    *[(n, ("cnn", True)) for n in ("MaxPooling2D", "AveragePooling2D", "GlobalMaxPooling2D", "MaxPool2d",
                                    "AdaptiveAvgPool2d", "max_pool2d", "UpSampling2D", "ZeroPadding2D")],
    *[(n, ("rnn", False)) for n in ("LSTM", "GRU", "SimpleRNN", "Bidirectional", "dynamic_rnn", "static_rnn",
                                     "bidirectional_dynamic_rnn", "BasicLSTMCell", "LSTMBlockCell", "GRUBlockCell",
                                     "BasicRNNCell")],
    *[(n, ("ann", False)) for n in ("Dense", "Linear", "LazyLinear", "Bilinear", "dense", "fully_connected",
                                     "linear")],
    *[(n, (None, False)) for n in ("Dropout", "Flatten", "Embedding", "BatchNormalization", "Pool", "MaxPooling")],
])
def test_the_architecture_a_layer_name_implies(name, expected):
    """Pooling, padding and upsampling only hint at a cnn (weak); a convolution, a recurrence or a dense layer decide."""
    from mlci.source._detect_vocab import layer_arch

    assert layer_arch(name) == expected
