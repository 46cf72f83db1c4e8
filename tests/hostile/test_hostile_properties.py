"""Property-based checks (hypothesis): whatever the config loader, the [space] parser, the store's records and
detection are given, the answer is a value or an MlciError (one line, a documented exit code), never another
exception (exit 1, a traceback)."""
from __future__ import annotations

import json
import math
import tempfile
import warnings
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hostile_kit import assert_refused, cli
from mlci.core.config import load_config, validate_config
from mlci.core.errors import MlciError
from mlci.core.store import MetricsRecord, RunRecord, TrialSpec, TrialState, read_record
from mlci.integrations.message import OutboxMessage
from mlci.tuning.spaces import distributions, parse_space

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

EDGES = [True, False, math.inf, -math.inf, math.nan, 1e308, -1e308, 1e-320, 0, -1, 2**63, 10**30, 0.5, 1, 8]
numbers = st.one_of(st.sampled_from(EDGES), st.integers(min_value=-(2**70), max_value=2**70),
                    st.floats(allow_nan=True, allow_infinity=True), st.booleans())
scalars = st.one_of(numbers, st.text(max_size=20), st.none())
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=10), inner, max_size=4)),
                      max_leaves=12)
KEYS = ["threshold", "metric", "max_trials", "max_minutes", "patience", "strategy", "pruner", "optimize", "parallel",
        "runner", "dataset", "entry", "seed", "max_restarts", "storage", "space", "images", "resources", "notify",
        "monitor", "data", "nonsense"]
SECTION_KEYS = ["smtp_host", "smtp_port", "security", "to", "from", "webhook_url", "retries", "timeout", "backoff",
                "memory", "cpus", "gpus", "network", "heartbeat_timeout", "poll", "sklearn", "keras", "type"]
configs = st.dictionaries(st.sampled_from(KEYS), st.one_of(
    values, st.dictionaries(st.sampled_from(SECTION_KEYS), values, max_size=4)), max_size=6)


def toml_value(value) -> str:
    """A Python value as TOML text (for what TOML can hold); None -> an empty string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str) or value is None:
        return json.dumps(value or "")
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


NUMERIC = ["threshold", "max_trials", "max_minutes", "patience", "parallel", "seed", "max_restarts"]


@FAST
@given(configs, st.dictionaries(st.sampled_from(NUMERIC), numbers, max_size=4))
@example({}, {"max_trials": True})
@example({}, {"max_minutes": math.inf})
def test_any_mapping_is_a_config_or_one_config_error(data, numeric):
    data = {**data, **numeric}
    try:
        config = validate_config(data, "fuzz")
    except MlciError as err:
        assert "\n" not in err.one_line()
        return
    for key in NUMERIC:  # what was accepted is a finite number in range, never a boolean read as 0 or 1
        assert not isinstance(data.get(key), bool), key
        value = getattr(config, key)
        assert value is None or math.isfinite(value), key
    assert 0 < config.threshold <= 1 and 1 <= config.max_trials <= 10_000


def load_toml_text(text: str) -> None:
    """mlci.toml holding `text`, loaded as `mlci run` loads it: a Config or an MlciError, nothing else."""
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "model.py"
        model.write_text("def build_model(hp):\n    pass\n")
        (Path(tmp) / "mlci.toml").write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            load_config(model)
        except MlciError as err:
            assert "\n" not in err.one_line()


@FAST
@given(configs)
@example({"x": [[[[[]]]]] * 2})
def test_any_toml_file_loads_or_is_one_config_error(data):
    load_toml_text("".join(f"{json.dumps(key)} = {toml_value(value)}\n" for key, value in data.items()))


@FAST
@given(st.text(max_size=300))
@example("x = " + "[" * 1000 + "]" * 1000)  # RecursionError in tomllib
def test_any_text_as_mlci_toml_loads_or_is_one_config_error(text):
    load_toml_text(text)


param = st.one_of(
    st.fixed_dictionaries({"type": st.sampled_from(["int", "float"]), "low": numbers, "high": numbers},
                          optional={"step": numbers, "log": st.booleans()}),
    st.fixed_dictionaries({}, optional={
        "type": st.sampled_from(["int", "float", "categorical", "bogus"]), "low": numbers, "high": numbers,
        "step": numbers, "log": st.one_of(st.booleans(), numbers), "choices": st.lists(scalars, max_size=3),
        "other": scalars}))


@FAST
@given(st.dictionaries(st.text(min_size=1, max_size=8), st.one_of(param, values), max_size=3))
@example({"x": {"type": "float", "low": -1e308, "high": 1e308}})  # the sampler's range overflowed
@example({"x": {"type": "float", "low": 0.0, "high": 1.0, "step": 1e-320}})  # Optuna's Decimal division
@example({"x": {"type": "int", "low": 1, "high": 8, "step": 10**30}})  # a step wider than the range
def test_any_space_is_refused_in_one_line_or_samples_cleanly(table):
    import optuna

    try:
        space = parse_space(table, "fuzz")
    except MlciError as err:
        assert "\n" not in err.one_line()
        return
    if not space:
        return
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        for _ in range(3):
            trial = study.ask(distributions(space))
            for name, value in trial.params.items():
                assert not isinstance(value, float) or math.isfinite(value), (name, value)
                assert space[name].type == "categorical" or space[name].low <= value <= space[name].high
            study.tell(trial, 0.5)


RECORDS = [RunRecord, TrialSpec, TrialState, MetricsRecord, OutboxMessage]


@FAST
@given(st.sampled_from(RECORDS), st.one_of(values.map(json.dumps), st.binary(max_size=200).map(
    lambda raw: raw.decode("latin-1")), st.dictionaries(st.sampled_from(
        ["run_id", "trial", "value", "metric", "status", "config", "hparams", "schema_version", "deliveries",
         "restarts", "kind", "accuracy"]), values, max_size=6).map(json.dumps)))
@example(MetricsRecord, "[" * 100_000 + "]" * 100_000)  # RecursionError in json.loads
@example(MetricsRecord, '{"value": 1e308}')  # a score out of range made a run "met"
def test_any_record_file_reads_or_is_one_line(model, text):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "record.json"
        path.write_text(text, encoding="utf-8", errors="surrogateescape")
        try:
            record = read_record(path, model, what=path.name, fix="fix it")
        except MlciError as err:
            assert "\n" not in err.one_line()
            return
    if isinstance(record, MetricsRecord) and not math.isnan(record.value) and record.metric == "accuracy":
        assert 0 <= record.value <= 1


@FAST
@given(st.one_of(st.binary(max_size=400), st.text(max_size=400).map(lambda t: t.encode("utf-8", "surrogatepass"))))
def test_detection_of_any_bytes_answers_or_is_one_line(content):
    from mlci.source.detect import detect

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.py"
        path.write_bytes(content)
        try:
            detect(path)
        except MlciError as err:
            assert "\n" not in err.one_line()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.text(max_size=80))
def test_any_run_id_through_the_cli_is_never_exit_1(tmp_path, run_id):
    said = cli("status", "--run", run_id, "--home", tmp_path / "store")
    assert said.code in (0, 2), said
    if said.code:
        assert_refused(said, 2)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300))
def test_detect_through_the_cli_is_never_exit_1(tmp_path, content):
    path = tmp_path / "model.py"
    path.write_bytes(content)
    said = cli("detect", path)
    assert said.code in (0, 2, 4), said
    if said.code:
        assert_refused(said, said.code)


@FAST
@given(st.text(min_size=1, max_size=40).filter(lambda name: "/" not in name and "\x00" not in name
                                               and name not in (".", "..")),
       st.one_of(st.none(), st.text(max_size=12)))
@example("..a", None)
@example("_private", None)
def test_every_run_id_mlci_makes_is_an_id_it_accepts(name, commit):
    """The check on ids never refuses a run mlci made itself (a model `_m.py`, `.hidden.py`, any name)."""
    from mlci.core.store import check_run_id, make_run_id

    run_id = make_run_id(Path("/models") / f"{name}.py", "c" * 64, commit or None)
    assert check_run_id(run_id) == run_id
