"""Configuration: `mlci.toml` next to the model file (or `--config FILE`), validated with pydantic.

Every mistake is one line naming the file, the key and what is allowed (ConfigError, exit 2).
"""
from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import (BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator,
                      model_validator)

from mlci.core.errors import ConfigError
from mlci.core.objective import Metric

CONFIG_NAME = "mlci.toml"

Dataset = Literal["mnist-sample", "digits", "mnist", "module"]


class _Section(BaseModel):
    """Numbers are finite (no inf, nan) and never booleans: `max_trials = true` is a mistake, not 1."""

    # defer_build: a model's validator is built when first used, not at import (commands start at once)
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False, defer_build=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_booleans_as_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, bool) and _numeric(cls.model_fields[info.field_name].annotation):
            raise ValueError(f"a number, not {str(value).lower()}")
        return value


def _numeric(annotation: Any) -> bool:
    from typing import get_args

    return annotation in (int, float) or any(arg in (int, float) for arg in get_args(annotation))


class ImagesConfig(_Section):
    """Which image trains which framework (job 2 starts the one matching the detected kind).

    Other keys map what `mlci detect` reports as unsupported (xgboost = "my/xgb:1") to an image.
    """

    model_config = ConfigDict(extra="allow", validate_assignment=True, allow_inf_nan=False)
    sklearn: str = "mlci/sklearn:latest"
    keras: str = "mlci/keras:latest"
    torch: str = "mlci/torch:latest"

    @model_validator(mode="after")
    def _extra_are_images(self) -> "ImagesConfig":
        for key, value in (self.model_extra or {}).items():
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"images.{key} must be an image name such as \"my/{key}:1\"")
        return self


def memory_bytes(size: str) -> int:
    """'512m' -> bytes (ResourcesConfig has checked the format)."""
    units = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
    text = size.strip().lower()
    digits = text.rstrip("bkmg")
    return int(digits) * units[text[len(digits):]]


class ResourcesConfig(_Section):
    """Limits for a training container (the Docker runner)."""

    memory: str | None = Field(default=None, description="memory limit such as '2g' or '512m'")
    cpus: float | None = Field(default=None, gt=0, le=512)
    network: str = "none"
    gpus: int | None = Field(default=None, ge=0)

    @field_validator("memory")
    @classmethod
    def _memory_format(cls, value: str | None) -> str | None:
        if value is None:
            return value
        text = value.strip().lower()
        digits = text.rstrip("bkmg")
        if not digits.isdigit() or int(digits) <= 0 or text[len(digits):] not in ("", "b", "k", "m", "g"):
            raise ValueError("a size such as '512m' or '2g'")
        return text


class NotifyConfig(_Section):
    """Where notifications go. Passwords never live here: MLCI_SMTP_PASSWORD in the environment."""

    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    security: Literal["starttls", "ssl", "none"] = "starttls"
    smtp_user: str | None = None
    from_: str | None = Field(default=None, alias="from")
    to: list[str] = Field(default_factory=list)
    cc: list[str] = Field(default_factory=list)
    webhook_url: str | None = None
    retries: int = Field(default=3, ge=0, le=20)
    timeout: float = Field(default=10.0, gt=0, le=300)
    backoff: float = Field(default=2.0, ge=0, le=60, description="seconds before the first retry; doubles each time")
    ca_file: str | None = Field(default=None, description="PEM file of the CA that signed the SMTP server's certificate")

    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)

    @field_validator("smtp_host", "smtp_user", "from_", "ca_file", "webhook_url")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        # A CR or LF here would end an SMTP command or a mail header early (header injection).
        if value is not None and ("\r" in value or "\n" in value):
            raise ValueError("a single line: CR/LF in a header or SMTP value would inject headers")
        return value

    @field_validator("from_", "to", "cc")
    @classmethod
    def _addresses(cls, value: str | list[str] | None) -> str | list[str] | None:
        from email.utils import getaddresses

        for address in [value] if isinstance(value, str) else value or []:
            if "\r" in address or "\n" in address:
                raise ValueError("one address per line: CR/LF in an address would inject mail headers")
            found = getaddresses([address])
            if len(found) != 1 or "@" not in found[0][1]:
                raise ValueError(f"one mail address per list item such as 'dev@example.com', got {address!r}")
        return value

    @field_validator("webhook_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None:
            check_http_url(value)
        return value


def check_http_url(value: str) -> str:
    """An http(s) URL that urllib can open: a host, a valid port, no whitespace (raises ValueError)."""
    from urllib.parse import urlsplit

    if not value.startswith(("http://", "https://")) or any(c.isspace() or ord(c) < 32 for c in value):
        raise ValueError("an http:// or https:// URL on one line, without spaces")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018  raises ValueError on a port that is not a number in 0..65535
    except ValueError as exc:
        raise ValueError(f"an http:// or https:// URL ({exc})") from None
    if not parts.hostname:
        raise ValueError("an http:// or https:// URL with a host name")
    return value


class MonitorConfig(_Section):
    """How a dead or hung trial is restarted (job 6); the number of restarts is `max_restarts`."""

    backoff: float = Field(default=1.0, ge=0, le=300,
                           description="seconds before the second restart; doubles after it; the first is immediate")
    heartbeat_timeout: float = Field(default=120.0, ge=2, le=86_400,
                                     description="a trial silent this long (frozen, or its host rebooted) is dead")
    poll: float = Field(default=1.0, gt=0, le=60, description="seconds between checks where no event wakes the monitor")


class TrackingConfig(_Section):
    """Where trials are logged besides the run store (docs/reports.md#mlflow-tracking)."""

    mlflow_uri: str | None = Field(default=None, description="an MLflow tracking server (http://host:5000)")
    experiment: str | None = Field(default=None, description="the MLflow experiment [default: mlci/<model name>]")

    @field_validator("mlflow_uri")
    @classmethod
    def _tracking_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("an http:// or https:// URL of an MLflow tracking server")
        return value


class DataConfig(_Section):
    """Offline data for unmodified scripts written for full MNIST."""

    serve_keras_mnist: str | None = None
    accuracy_files: list[str] = Field(default_factory=list)


class Config(_Section):
    threshold: float = Field(default=0.80, gt=0, le=1)
    metric: Metric = "accuracy"
    max_trials: int = Field(default=10, ge=1, le=10_000)
    max_minutes: float | None = Field(default=None, gt=0)  # also ends the running trial, after its next epoch
    trial_minutes: float | None = Field(default=None, gt=0, le=525_600)  # one trial's limit, restarts included
    stall_minutes: float | None = Field(default=30.0, gt=0, le=525_600)  # no new epoch or log line this long: stopped
    patience: int | None = Field(default=None, ge=1)
    strategy: Literal["ladder", "optuna", "random"] = "optuna"
    pruner: Literal["median", "hyperband", "none"] = "median"
    optimize: bool = False  # keep searching after the threshold is met, for the best within the budget
    parallel: int = Field(default=1, ge=1, le=64)
    runner: Literal["local", "docker", "auto"] = "local"
    # warm: local trials fork from a pre-imported worker, Docker trials start in a standby container made ahead;
    # daemon: as warm, the local worker kept between runs; fresh: a process (a container) started per trial
    workers: Literal["warm", "daemon", "fresh"] = "warm"
    worker_idle_minutes: float = Field(default=10.0, gt=0, le=1440)  # workers = "daemon": ends after this long idle
    dataset: Dataset | None = None
    entry: str | None = None  # the model file when mlci is pointed at a folder (mlci detect / run)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    max_restarts: int = Field(default=3, ge=0, le=100)
    storage: str | None = None
    space: dict[str, Any] = Field(default_factory=dict)
    images: ImagesConfig = Field(default_factory=ImagesConfig)
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)
    notify: NotifyConfig = Field(default_factory=NotifyConfig)
    monitor: MonitorConfig = Field(default_factory=MonitorConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)



def _allowed(error: dict[str, Any]) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        return "remove it (allowed keys are listed in docs/configuration.md)"
    if kind == "literal_error":
        return f"allowed: {ctx.get('expected', '')}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        bounds = {"greater_than": "> ", "greater_than_equal": ">= ", "less_than": "< ", "less_than_equal": "<= "}
        return f"allowed: a number {bounds[kind]}{next(iter(ctx.values()))}"
    if kind == "value_error":
        return f"allowed: {ctx.get('error', error['msg'])}"
    return f"expected {error['msg'].lower()}"


def _describe(source: str, error: dict[str, Any]) -> str:
    key = ".".join(str(part) for part in error["loc"]) or "(top level)"
    value = repr(error.get("input"))
    value = value if len(value) <= 80 else value[:77] + "..."
    shown = "" if error["type"] == "missing" else f" = {value}"
    if error["type"] == "extra_forbidden":
        return f"{source}: unknown key '{key}'; {_allowed(error)}"
    return f"{source}: key '{key}'{shown} is invalid; {_allowed(error)}"


def _threshold_range(data: dict[str, Any], source: str) -> None:
    threshold = data.get("threshold")
    if isinstance(threshold, (int, float)) and not isinstance(threshold, bool) and not 0 < threshold <= 1:
        raise ConfigError(f"{source}: key 'threshold' = {threshold!r} is out of range; allowed: a number in (0, 1], e.g. 0.8")


def validate_config(data: dict[str, Any], source: str = "config") -> Config:
    """Validate a mapping (from TOML or overrides); one-line ConfigError on the first problem."""
    _threshold_range(data, source)
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(source, exc.errors()[0])) from None


def find_config(model_path: Path | None, explicit: Path | None = None) -> Path | None:
    if explicit is not None:
        if not explicit.is_file():
            raise ConfigError(f"{explicit}: config file not found; pass an existing file to --config")
        return explicit
    if model_path is None:
        return None
    folder = model_path if model_path.is_dir() else model_path.parent
    candidate = folder / CONFIG_NAME
    return candidate if candidate.is_file() else None


def read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}); fix the syntax") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply (arrays or tables inside each other)",
                          hint="an mlci.toml needs at most a few levels") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read ({exc})") from None


def load_config(model_path: Path | None = None, explicit: Path | None = None,
                overrides: dict[str, Any] | None = None) -> tuple[Config, Path | None]:
    """Config for a model file: its mlci.toml (or `explicit`), then command-line overrides."""
    path = find_config(model_path, explicit)
    data = read_toml(path) if path else {}
    source = str(path) if path else "defaults"
    config = validate_config(data, source)
    if overrides:
        merged = {**data, **{k: v for k, v in overrides.items() if v is not None}}
        config = validate_config(merged, f"{source} + command-line options")
    return config, path
