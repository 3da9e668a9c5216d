"""Settings of the ``calendar`` fetcher and function (``LOOM_CALENDAR_*`` besides ``LOOM_*``).

Accounts are one JSON list in ``LOOM_CALENDAR_ACCOUNTS``::

    LOOM_CALENDAR_ACCOUNTS='[{"name": "work", "url": "https://caldav.fastmail.com/dav/",
                              "username": "ada@fastmail.com", "password": "app-password",
                              "calendars": ["Work", "Family"]}]'
"""

from __future__ import annotations

from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from loom.settings import LoomSettings, settings_for

__all__ = ["CalDavAccount", "CalendarSettings", "calendar_settings"]


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
    calendar_expand_past_days: int = Field(
        default=30, ge=0, le=3660,
        description="Occurrences of a recurring event are made from this many days before "
        "the time of the calendar object's version …",
    )  # fmt: skip
    calendar_expand_future_days: int = Field(
        default=180, ge=0, le=3660,
        description="… to this many days after it (an event that does not recur is always "
        "made once, whenever it is).",
    )  # fmt: skip
    calendar_max_occurrences: int = Field(
        default=1000, ge=1, le=100_000,
        description="At most this many occurrences of one calendar object (a rule that "
        "repeats every minute stops here).",
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

    @property
    def accounts(self) -> list[CalDavAccount]:
        """The accounts the fetcher host runs (``LOOM_CALENDAR_ACCOUNTS``)."""
        return self.calendar_accounts


def calendar_settings(settings: LoomSettings) -> CalendarSettings:
    """``settings`` as CalendarSettings: its shared values, ``LOOM_CALENDAR_*`` from the env."""
    return settings_for(CalendarSettings, settings)
