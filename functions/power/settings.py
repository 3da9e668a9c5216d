"""Settings of the power function (``LOOM_POWER_*`` besides the shared ``LOOM_*``)."""

from __future__ import annotations

from pydantic import Field, ValidationInfo, field_validator

from loom.settings import LoomSettings, settings_for

__all__ = ["PowerSettings", "power_settings"]


class PowerSettings(LoomSettings):
    """How charge rates are smoothed and how charging sessions are told apart."""

    power_rate_window_seconds: float = Field(
        default=1800.0,
        gt=0,
        le=86_400,
        description="The charge rate is the least-squares slope of the readings of this many "
        "seconds before the newest one (and one reading before them, across a short gap).",
    )
    power_rate_min_span_seconds: float = Field(
        default=300.0,
        ge=0,
        le=86_400,
        description="Readings spanning less time than this give no rate (0, times unknown): "
        "a 1 % step over a few seconds is not a rate.",
    )
    power_max_gap_seconds: float = Field(
        default=7200.0,
        gt=0,
        le=7 * 86_400,
        description="A reading further back than this is never used for the rate, and a "
        "silence longer than this counts neither as time on battery nor as time charging.",
    )
    power_min_rate_pct_per_hour: float = Field(
        default=0.5,
        ge=0,
        le=100,
        description="Rates closer to 0 than this give no time to empty or full (null).",
    )
    power_session_merge_seconds: float = Field(
        default=120.0,
        ge=0,
        le=86_400,
        description="Unplugged for less than this and plugged in again: the same charging "
        "session goes on (a loose cable, a phone picked up).",
    )
    power_future_tolerance_seconds: float = Field(
        default=86_400.0,
        ge=0,
        description="A reading timestamped further ahead of the clock than this is impossible "
        "(dead letter).",
    )

    @field_validator("power_rate_min_span_seconds")
    @classmethod
    def _span_fits_window(cls, value: float, info: ValidationInfo) -> float:
        window = info.data.get("power_rate_window_seconds")
        if window is not None and value > window:
            raise ValueError(f"must not exceed LOOM_POWER_RATE_WINDOW_SECONDS ({window:g})")
        return value


def power_settings(settings: LoomSettings) -> PowerSettings:
    """``settings`` as PowerSettings: its shared values, ``LOOM_POWER_*`` from the env."""
    return settings_for(PowerSettings, settings)
