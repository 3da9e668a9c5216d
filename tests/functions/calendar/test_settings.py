"""Calendar accounts from LOOM_CALENDAR_ACCOUNTS: named without their password, and a bad
one refused at start without showing it."""

from __future__ import annotations

import json

import pytest

from functions.calendar.fetcher import fetch
from functions.calendar.settings import CalendarSettings
from loom.errors import ConfigError
from loom.runtime.fetcher import account_secrets
from loom.settings import load_settings

SECRET = "app-Pa55word-xyz"


def test_accounts_come_from_json_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOM_CALENDAR_ACCOUNTS", json.dumps([
        {"url": "https://caldav.fastmail.com/dav/", "username": "ada@fastmail.com",
         "password": SECRET, "calendars": ["Work"]},
        {"url": "http://radicale.lan:5232/", "username": "ada", "password": SECRET,
         "name": "home"},
    ]))  # fmt: skip
    config = load_settings(CalendarSettings)
    work, home = fetch.spec.accounts(config)
    assert (work.key, home.key) == ("ada@fastmail.com@caldav.fastmail.com", "home")
    assert (work.calendars, home.calendars) == (["Work"], [])
    assert account_secrets(work) == [SECRET]
    assert SECRET not in repr(config)


@pytest.mark.parametrize(
    ("account", "problem"),
    [
        ({"url": "https://ada:hunter2@dav.example.com/", "username": "ada", "password": SECRET},
         "must not hold a login"),
        ({"url": "ftp://dav.example.com/", "username": "ada", "password": SECRET},
         "http:// or https://"),
        ({"url": "https://dav.example.com/", "password": SECRET}, "username"),
        ({"url": "https://dav.example.com/", "username": "ada", "password": SECRET,
          "calendars": ["Work", "work"]}, "named twice"),
    ],
)  # fmt: skip
def test_a_bad_account_is_refused_at_start_without_its_password(
    monkeypatch: pytest.MonkeyPatch, account: dict[str, object], problem: str
) -> None:
    monkeypatch.setenv("LOOM_CALENDAR_ACCOUNTS", json.dumps([account]))
    with pytest.raises(ConfigError) as caught:
        load_settings(CalendarSettings)
    assert "LOOM_CALENDAR_ACCOUNTS" in str(caught.value)
    assert problem in str(caught.value)
    assert SECRET not in str(caught.value)


def test_the_floating_zone_must_be_a_real_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOM_CALENDAR_FLOATING_TIMEZONE", "Mars/Olympus")
    with pytest.raises(ConfigError, match="LOOM_CALENDAR_FLOATING_TIMEZONE"):
        load_settings(CalendarSettings)


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"LOOM_CALENDAR_REFRESH_DAYS": "40", "LOOM_CALENDAR_EXPAND_PAST_DAYS": "10",
          "LOOM_CALENDAR_EXPAND_FUTURE_DAYS": "20"},
         "LOOM_CALENDAR_REFRESH_DAYS (40) must not exceed LOOM_CALENDAR_EXPAND_PAST_DAYS + "
         "LOOM_CALENDAR_EXPAND_FUTURE_DAYS (30): occurrences between two sendings"),
        ({"LOOM_CALENDAR_EXPAND_FUTURE_DAYS": "600"},
         "(660) must stay under the 545 days external.calendar.enriched is kept"),
    ],
)  # fmt: skip
def test_windows_that_leave_gaps_or_outlast_retention_are_refused(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], problem: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings(CalendarSettings)
    assert problem in str(caught.value)
