"""Settings of the ``calendar`` fetcher and function (``LOOM_CALENDAR_*`` besides ``LOOM_*``).

Accounts are one JSON list in ``LOOM_CALENDAR_ACCOUNTS``::

    LOOM_CALENDAR_ACCOUNTS='[{"name": "work", "url": "https://caldav.fastmail.com/dav/",
                              "username": "ada@fastmail.com", "password": "app-password",
                              "calendars": ["Work", "Family"]}]'
"""

from __future__ import annotations

from typing import Self
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from loom.catalog import default_catalog
from loom.settings import LoomSettings, settings_for

__all__ = ["ENRICHED", "CalDavAccount", "CalendarSettings", "calendar_settings"]

ENRICHED = "external.calendar.enriched"


class CalDavAccount(BaseModel):
    """One CalDAV login and the calendars of it that are read."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str = Field(
        min_length=8, max_length=2048,
        description="The server's CalDAV address (its root, the principal or the "
        "calendar home), http:// or https://, without a login in it.",
    )  # fmt: skip
    username: str = Field(min_length=1, max_length=256, description="Login name.")
    password: SecretStr = Field(description="Password or app password; never logged.")
    calendars: list[str] = Field(
        default_factory=list, max_length=200,
        description="Calendars read, by display name or collection id (the last part of "
        "its URL), case-insensitive; empty: every calendar of the account.",
    )  # fmt: skip
    name: str | None = Field(
        default=None, min_length=1, max_length=128,
        description="What the account is called in logs, cursors, events and "
        "`loom fetch --account`; default username@host. Renaming it starts over.",
    )  # fmt: skip
    verify_tls: bool = Field(
        default=True, description="Check the server's TLS certificate (off: self-signed)."
    )

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL")
        if parts.username or parts.password:
            raise ValueError("must not hold a login: give username and password on their own")
        return value

    @field_validator("calendars")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if any(not name.strip() for name in value):
            raise ValueError("a calendar name is empty")
        if len({name.casefold() for name in value}) != len(value):
            raise ValueError("a calendar is named twice")
        return value

    @property
    def key(self) -> str:
        """Names the account in cursors and logs; holds no secret."""
        return self.name or f"{self.username}@{urlsplit(self.url).hostname}"


class CalendarSettings(LoomSettings):
    """Which CalDAV accounts are read, how, and how recurring events are expanded."""

    calendar_accounts: list[CalDavAccount] = Field(
        default_factory=list,
        description="CalDAV accounts as a JSON list of {url, username, password, "
        "calendars, name, verify_tls}; none: the fetcher does nothing.",
    )
    calendar_timeout_seconds: float = Field(
        default=30.0, gt=0, le=600, description="Timeout of each request to a CalDAV server."
    )
    calendar_batch_size: int = Field(
        default=100, ge=1, le=1000,
        description="Calendar objects fetched (and acknowledged by Kafka, cursor saved) at "
        "a time.",
    )  # fmt: skip
    calendar_sync_tokens: bool = Field(
        default=True,
        description="Ask for changes since the last run by sync token (RFC 6578) where the "
        "server offers it; off: list every object's ETag each run and compare (for "
        "servers whose sync is broken).",
    )
    calendar_refresh_days: int = Field(
        default=30, ge=1, le=365,
        description="A recurring calendar object is sent again once in every period of "
        "this many days (counted from 1970-01-01 UTC), changed or not, so that its "
        "occurrences keep moving forward; it is then as of the period's start.",
    )  # fmt: skip
    calendar_expand_past_days: int = Field(
        default=30, ge=0, le=3660,
        description="Occurrences of a recurring event are made from this many days before "
        "the time the calendar object is sent as of (`fetched_at`: the start of its "
        "refresh period, or when it was written if later) …",
    )  # fmt: skip
    calendar_expand_future_days: int = Field(
        default=180, ge=0, le=3660,
        description="… to this many days after it (an event that does not recur is always "
        "made once, whenever it is).",
    )  # fmt: skip
    calendar_max_occurrences: int = Field(
        default=1000, ge=1, le=100_000,
        description="At most this many occurrences of one calendar object (the earliest in "
        "the window).",
    )  # fmt: skip
    calendar_max_rule_steps: int = Field(
        default=200_000, ge=1000, le=10_000_000,
        description="Work allowed for one recurrence rule: its periods (hours, days, …) "
        "from its DTSTART to the end of the window, times the instances a period can "
        "hold. A rule that needs more is expanded as far as this goes; one that cannot "
        "reach the window so (every second since 1970) makes the object a dead letter. "
        "The default is about 22 years of an hourly rule, or five centuries of a daily one.",
    )  # fmt: skip
    calendar_expand_timeout_seconds: float = Field(
        default=5.0, gt=0, le=600,
        description="An expansion still running after this long is stopped, and the "
        "object is a dead letter: a rule that never matches again would be walked to the "
        "year 9999 (rules within LOOM_CALENDAR_MAX_RULE_STEPS take a second or two).",
    )  # fmt: skip
    calendar_floating_timezone: str = Field(
        default="UTC",
        description="IANA zone of floating times (no zone given; the calendar's "
        "X-WR-TIMEZONE wins where it has one).",
    )

    @field_validator("calendar_floating_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("not an IANA time zone (e.g. Europe/Berlin)") from None
        return value

    @model_validator(mode="after")
    def _windows_meet(self) -> Self:
        span = self.calendar_expand_past_days + self.calendar_expand_future_days
        if self.calendar_refresh_days > span:
            raise ValueError(
                f"LOOM_CALENDAR_REFRESH_DAYS ({self.calendar_refresh_days}) must not exceed "
                "LOOM_CALENDAR_EXPAND_PAST_DAYS + LOOM_CALENDAR_EXPAND_FUTURE_DAYS "
                f"({span}): occurrences between two sendings of a series would be missed"
            )
        kept = default_catalog()[ENRICHED].retention.days
        if span + self.calendar_refresh_days >= kept:
            raise ValueError(
                "LOOM_CALENDAR_EXPAND_PAST_DAYS + LOOM_CALENDAR_EXPAND_FUTURE_DAYS + "
                f"LOOM_CALENDAR_REFRESH_DAYS ({span + self.calendar_refresh_days}) must stay "
                f"under the {kept} days {ENRICHED} is kept: the earliest occurrences "
                "would be past it when made"
            )
        return self

    @property
    def accounts(self) -> list[CalDavAccount]:
        """The accounts the fetcher host runs (``LOOM_CALENDAR_ACCOUNTS``)."""
        return self.calendar_accounts


def calendar_settings(settings: LoomSettings) -> CalendarSettings:
    """``settings`` as CalendarSettings: its shared values, ``LOOM_CALENDAR_*`` from the env."""
    return settings_for(CalendarSettings, settings)
