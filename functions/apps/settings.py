"""Settings of the apps function (``LOOM_APPS_*`` besides the shared ``LOOM_*``)."""

from __future__ import annotations

from pydantic import Field

from loom.settings import LoomSettings, settings_for

__all__ = ["AppsSettings", "apps_settings"]


class AppsSettings(LoomSettings):
    """How app sessions are built from one device's lifecycle and screen events."""

    apps_reorder_seconds: float = Field(
        default=3600.0,
        ge=0,
        le=86_400,
        description="How far (in event time) one input, app events or screen/lock events, "
        "may run ahead of the other, e.g. when a phone back online uploads one backlog "
        "before the other; the slower one's events older than that are late and dropped. "
        "Sessions come out once both inputs have passed their end (on a phone: at the end "
        "of each pickup), and at most this long after it when one input stays quiet.",
    )
    apps_max_session_seconds: float = Field(
        default=86_400.0,
        gt=0,
        le=7 * 86_400,
        description="Longest believable session. A longer one (its closing event never came) "
        "ends at the device's last sign of life during it, at most this long, ended_by timeout.",
    )
    apps_max_future_seconds: float = Field(
        default=86_400.0,
        gt=0,
        description="An event timestamped this far after Loom received it is dead-lettered.",
    )
    apps_resume_after_unlock: bool = Field(
        default=True,
        description="When the screen comes back on and unlocks, the app that was on top when "
        "it went off is on top again: reopen its session then, without waiting for a "
        "foreground event (one that comes is then part of it, not a second session).",
    )
    apps_max_buffered: int = Field(
        default=2000,
        ge=1,
        le=100_000,
        description="Most events of one device held back for reordering; past it the oldest "
        "are taken as final.",
    )


def apps_settings(settings: LoomSettings) -> AppsSettings:
    """``settings`` as AppsSettings: its shared values, ``LOOM_APPS_*`` from the env."""
    return settings_for(AppsSettings, settings)
