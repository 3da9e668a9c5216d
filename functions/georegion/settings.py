"""Settings of the ``georegion`` function (``LOOM_GEOREGION_*`` besides the shared ``LOOM_*``)."""

from __future__ import annotations

from pydantic import Field

from loom.settings import LoomSettings, settings_for

__all__ = ["GeoregionSettings", "georegion_settings"]


class GeoregionSettings(LoomSettings):
    """When a device counts as inside a saved region, and how long before that is said."""

    georegion_dwell_seconds: float = Field(
        default=60.0,
        ge=0,
        le=86_400,
        description="How long a device must stay in (or out of) a region before the enter "
        "(or exit) is emitted; the event carries the time of the first fix of that stay.",
    )
    georegion_margin_m: float = Field(
        default=50.0,
        ge=0,
        le=10_000,
        description="Hysteresis: a device inside a region leaves only once its accuracy "
        "circle is wholly more than this far outside the boundary.",
    )
    georegion_max_accuracy_m: float = Field(
        default=200.0,
        gt=0,
        le=100_000,
        description="Fixes less accurate than this move no region state (cell-tower fixes).",
    )
    georegion_default_accuracy_m: float = Field(
        default=50.0,
        ge=0,
        le=10_000,
        description="Accuracy assumed for a fix that reports none (or 0, as Android does).",
    )
    georegion_dwell_report_seconds: float = Field(
        default=0.0,
        ge=0,
        description="While a device stays in a region, a `dwell` event every this many "
        "seconds (the first this long after entering); 0 = none.",
    )
    georegion_regions_ttl_seconds: float = Field(
        default=30.0,
        ge=0,
        le=3600,
        description="How long the saved regions read from PostgreSQL are used before they "
        "are read again (a change through /regions takes effect within this).",
    )


def georegion_settings(settings: LoomSettings) -> GeoregionSettings:
    """``settings`` as GeoregionSettings: its shared values, ``LOOM_GEOREGION_*`` from the env."""
    return settings_for(GeoregionSettings, settings)
