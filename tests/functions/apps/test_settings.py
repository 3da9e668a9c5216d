"""The apps function's settings: LOOM_APPS_* read at start, a bad value named clearly."""

from __future__ import annotations

import pytest

from functions.apps.handler import lifespan
from functions.apps.settings import AppsSettings, apps_settings
from loom.errors import ConfigError
from loom.runtime.state import PostgresStateStore, Stateful
from loom.settings import LoomSettings


def test_defaults_are_documented_and_sane() -> None:
    settings = AppsSettings()
    assert settings.apps_reorder_seconds == 3600
    assert settings.apps_max_session_seconds == 86_400
    assert settings.apps_max_future_seconds == 86_400
    assert settings.apps_resume_after_unlock is True
    for name, field in AppsSettings.model_fields.items():
        if name.startswith("apps_"):
            assert field.description, name


def test_a_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOM_APPS_REORDER_SECONDS", "-1")
    with pytest.raises(ConfigError, match="LOOM_APPS_REORDER_SECONDS"):
        apps_settings(LoomSettings())


async def test_the_lifespan_opens_the_state_store_with_the_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LOOM_APPS_REORDER_SECONDS", "60")
    shared = LoomSettings(database_url="postgresql://loom@127.0.0.1:1/none")
    async with lifespan(shared) as opened:  # connects lazily: no database needed to open
        assert isinstance(opened, Stateful)
        assert isinstance(opened.store, PostgresStateStore)
        assert opened.store.function == "apps"
        assert opened.settings.apps_reorder_seconds == 60
        assert opened.settings.database_url == shared.database_url
