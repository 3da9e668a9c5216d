"""Settings: the seed's LOOM_ variables, frozen, with a clear error for a bad value."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from loom.errors import ConfigError, LoomError
from loom.settings import LoomSettings, load_settings, variable


def test_defaults_follow_the_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("LOOM_DATABASE_URL", "LOOM_KAFKA_BOOTSTRAP_SERVERS", "LOOM_PORT", "LOOM_DEBUG"):
        monkeypatch.delenv(key, raising=False)
    s = load_settings(LoomSettings)
    assert s.database_url == "postgresql://loom:loom@localhost:5432/loom"
    assert s.kafka_bootstrap_servers == "localhost:9092"
    assert (s.port, s.log_level, s.cors_origins) == (8000, "INFO", ["*"])


def test_every_seed_variable_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "LOOM_DATABASE_URL": "postgresql://a@db:5433/x",
        "LOOM_KAFKA_BOOTSTRAP_SERVERS": "k1:9092,k2:9092",
        "LOOM_KAFKA_TOPIC_PREFIX": "loom",
        "LOOM_HOST": "127.0.0.1",
        "LOOM_PORT": "8100",
        "LOOM_LOG_LEVEL": "debug",
        "LOOM_CORS_ORIGINS": "https://a.example, https://b.example",
        "LOOM_ENVIRONMENT": "production",
        "LOOM_DEBUG": "true",
        "LOOM_KAFKA_DEFAULT_PARTITIONS": "12",
        "LOOM_KAFKA_DEFAULT_REPLICATION_FACTOR": "3",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    s = load_settings(LoomSettings)
    assert s.database_url == "postgresql://a@db:5433/x"
    assert s.kafka_bootstrap_servers == "k1:9092,k2:9092"
    assert s.kafka_topic_prefix == "loom"
    assert (s.host, s.port, s.log_level) == ("127.0.0.1", 8100, "DEBUG")
    assert s.cors_origins == ["https://a.example", "https://b.example"]
    assert (s.environment, s.debug) == ("production", True)
    assert (s.kafka_default_partitions, s.kafka_default_replication_factor) == (12, 3)


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("LOOM_PORT", "eighty", "LOOM_PORT='eighty'"),
        ("LOOM_PORT", "70000", "less than or equal to 65535"),
        ("LOOM_LOG_LEVEL", "LOUD", "LOOM_LOG_LEVEL='LOUD'"),
        ("LOOM_KAFKA_BOOTSTRAP_SERVERS", "localhost", "'localhost' is not host:port"),
        ("LOOM_DATABASE_URL", "mysql://x", "must start with postgresql://"),
        ("LOOM_KAFKA_DEFAULT_PARTITIONS", "0", "LOOM_KAFKA_DEFAULT_PARTITIONS"),
        ("LOOM_ENVIRONMENT", "moon", "LOOM_ENVIRONMENT='moon'"),
    ],
)
def test_bad_value_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, key: str, value: str, says: str
) -> None:
    monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError, match="invalid settings") as info:
        load_settings(LoomSettings)
    assert says in str(info.value)
    assert isinstance(info.value, LoomError)


def test_settings_are_frozen() -> None:
    s = LoomSettings()
    with pytest.raises(ValidationError):
        s.port = 1  # type: ignore[misc]


def test_a_list_setting_that_is_not_json_is_a_clear_error_without_its_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pydantic import Field

    class WithAccounts(LoomSettings):
        things_accounts: list[dict[str, str]] = Field(default_factory=list)

    monkeypatch.setenv("LOOM_THINGS_ACCOUNTS", '[{"password": "hunter2"')
    with pytest.raises(ConfigError) as caught:
        load_settings(WithAccounts)
    assert str(caught.value) == "invalid settings:\n  LOOM_THINGS_ACCOUNTS: not valid JSON"
    assert "hunter2" not in repr(caught.value.__cause__)


def test_a_check_across_settings_never_prints_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import model_validator

    class Windowed(LoomSettings):
        window: float = 5.0
        hop: float = 2.5

        @model_validator(mode="after")
        def _hop_fits(self) -> Windowed:
            if self.hop > self.window:
                raise ValueError("LOOM_HOP must not exceed LOOM_WINDOW")
            return self

    monkeypatch.setenv("LOOM_DATABASE_URL", "postgresql://loom:s3cret-pw@db/loom")
    monkeypatch.setenv("LOOM_HOP", "9")
    with pytest.raises(ConfigError) as caught:
        load_settings(Windowed)
    assert "LOOM_HOP must not exceed LOOM_WINDOW" in str(caught.value)
    assert "s3cret-pw" not in str(caught.value)
    assert caught.value.__cause__ is None


def test_a_field_is_named_by_its_variable() -> None:
    assert variable(LoomSettings, "database_url") == "LOOM_DATABASE_URL"
    assert variable(LoomSettings, "port", "debug") == "LOOM_PORT, LOOM_DEBUG"
    with pytest.raises(ValueError, match="LoomSettings has no field 'nope'"):
        variable(LoomSettings, "nope")


def test_an_http_url_setting_is_checked_and_kept_without_its_slash(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pydantic import Field

    from loom.settings import HttpUrl

    class WithServer(LoomSettings):
        thing_url: HttpUrl = Field(default="https://example.org")

    monkeypatch.setenv("LOOM_THING_URL", "https://api.example.org/v0/")
    assert load_settings(WithServer).thing_url == "https://api.example.org/v0"
    monkeypatch.setenv("LOOM_THING_URL", "ftp://example.org")
    with pytest.raises(ConfigError, match=r"LOOM_THING_URL='ftp://example.org': .*http"):
        load_settings(WithServer)
