"""Settings shared by every Loom component, read from ``LOOM_*`` environment variables.

One frozen class; components that need more subclass it with their own fields.
A bad value fails at start with :class:`~loom.errors.ConfigError` naming the variable.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, TypeVar, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    SecretBytes,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from loom.errors import ConfigError

__all__ = ["HttpUrl", "LoomSettings", "load_settings", "settings_for", "variable"]

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
Environment = Literal["development", "test", "staging", "production"]


class LoomSettings(BaseSettings):
    """The seed's ``LOOM_`` variables, with documented defaults."""

    model_config = SettingsConfigDict(
        env_prefix="LOOM_",
        frozen=True,
        extra="ignore",
        case_sensitive=False,
    )

    database_url: str = Field(
        default="postgresql://loom:loom@localhost:5432/loom",
        description="PostgreSQL URL (libpq URI); `loom dev` points it at the embedded server.",
    )
    kafka_bootstrap_servers: str = Field(
        default="localhost:9092",
        description="Comma-separated host:port list of Kafka brokers.",
    )
    kafka_topic_prefix: str = Field(
        default="",
        pattern=r"^[A-Za-z0-9._-]*$",
        description="Prepended as '<prefix>.' to every topic; empty keeps the seed's names.",
    )
    kafka_default_partitions: int = Field(
        default=3, ge=1, le=1024, description="Partitions of topics whose catalog entry names none."
    )
    kafka_default_replication_factor: int = Field(
        default=1, ge=1, le=16, description="Replication factor of created topics."
    )
    store_backend: Literal["auto", "timescaledb", "partitioned"] = Field(
        default="auto",
        description="How event tables are made: TimescaleDB hypertables, native time "
        "partitions, or auto (TimescaleDB where the extension is available).",
    )
    host: str = Field(default="0.0.0.0", description="Address HTTP servers bind to.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port of the ingest HTTP server.")
    log_level: LogLevel = Field(default="INFO", description="Least severe level that is logged.")
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["*"],
        description="Origins allowed by CORS: '*' or a comma-separated list.",
    )
    environment: Environment = Field(default="development", description="Deployment stage.")
    debug: bool = Field(default=False, description="Verbose errors and logs; never in production.")

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _check_servers(cls, value: str) -> str:
        for server in value.split(","):
            host, sep, port = server.strip().rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"{server.strip()!r} is not host:port")
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        if not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("must start with postgresql://")
        return value


def _http_url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError("must start with http:// or https://")
    return value.rstrip("/")


# A setting that names an HTTP(S) server: checked at start, kept without a trailing slash.
HttpUrl = Annotated[str, AfterValidator(_http_url)]

S = TypeVar("S", bound=LoomSettings)


def variable(cls: type[BaseSettings], *fields: str) -> str:
    """The environment variable of each field of ``cls``, joined with ", ":
    ``LOOM_URLS_MAX_BYTES`` for ``urls_max_bytes``."""
    prefix = str(cls.model_config.get("env_prefix", ""))
    for field in fields:
        if field not in cls.model_fields:
            raise ValueError(f"{cls.__name__} has no field {field!r}")
    return ", ".join(f"{prefix}{field}".upper() for field in fields)


def load_settings(cls: type[S], **overrides: object) -> S:
    """Read ``cls`` from the environment, turning a bad value into a clear ConfigError."""
    try:
        return cls(**overrides)  # type: ignore[arg-type]
    except SettingsError as exc:  # a value that is not even JSON; never quote it
        found = re.search(r'field "(\w+)"', str(exc))
        name = str(cls.model_config.get("env_prefix", "")) + (found[1] if found else "?").upper()
        raise ConfigError(f"invalid settings:\n  {name}: not valid JSON") from None
    except ValidationError as exc:
        prefix = str(cls.model_config.get("env_prefix", ""))
        problems = []
        hidden = False
        for err in exc.errors():
            if not err["loc"]:  # a check across fields: its input is every setting, secrets too
                hidden = True
                problems.append(str(err["msg"]))
                continue
            field = "_".join(str(part) for part in err["loc"][:1])
            name = prefix + field.upper()
            info = cls.model_fields.get(field)
            if info is not None and _holds_secret(info.annotation):
                # its value may hold a password: say where, never what
                hidden = True
                where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"][1:])
                problems.append(f"{name}{where}: {err['msg']}")
            else:
                problems.append(f"{name}={err.get('input')!r}: {err['msg']}")
        message = "invalid settings:\n  " + "\n  ".join(problems)
        raise ConfigError(message) from (None if hidden else exc)


def _holds_secret(annotation: Any, seen: frozenset[type] = frozenset()) -> bool:
    """Whether a field of this type may hold a ``SecretStr`` (in a list, a model ...)."""
    if isinstance(annotation, type):
        if issubclass(annotation, (SecretStr, SecretBytes)):
            return True
        if issubclass(annotation, BaseModel) and annotation not in seen:
            return any(_holds_secret(f.annotation, seen | {annotation})
                       for f in annotation.model_fields.values())  # fmt: skip
    return any(_holds_secret(arg, seen) for arg in get_args(annotation))


_EXTENDED: dict[tuple[int, type[LoomSettings]], tuple[LoomSettings, LoomSettings]] = {}


def settings_for(cls: type[S], settings: LoomSettings) -> S:
    """``settings`` as ``cls``, a component's own settings class: the shared values that
    ``settings`` holds, the component's own from the environment (a bad one is a
    ConfigError). Read once per settings object: hosts hand the same one to every call."""
    if isinstance(settings, cls):
        return settings
    key = (id(settings), cls)
    known = _EXTENDED.get(key)
    if known is not None and known[0] is settings:
        return known[1]  # type: ignore[return-value]
    shared = {name: getattr(settings, name) for name in LoomSettings.model_fields}
    resolved = load_settings(cls, **shared)
    if len(_EXTENDED) >= 64:
        _EXTENDED.clear()
    _EXTENDED[key] = (settings, resolved)
    return resolved
