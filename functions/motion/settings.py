"""Settings of the motion function (``LOOM_MOTION_*`` besides the shared ``LOOM_*``)."""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator

from loom.settings import LoomSettings, settings_for

__all__ = ["MotionSettings", "motion_settings"]


class MotionSettings(LoomSettings):
    """Sliding windows over one device's accelerometer samples, and what counts as an impact."""

    motion_window_seconds: float = Field(
        default=5.0, ge=1.0, le=60.0, description="Length of one window of samples, seconds."
    )
    motion_hop_seconds: float = Field(
        default=2.5,
        ge=0.25,
        le=60.0,
        description="Time between the ends of two windows (≤ the window: they overlap), seconds.",
    )
    motion_impact_threshold: float = Field(
        default=35.0,
        gt=9.81,
        le=1000.0,
        description="Peak magnitude, m/s², above which a window reports an impact (≈3.6 g: "
        "above the peaks of running with a phone in a pocket, below drops and knocks).",
    )
    motion_max_samples: int = Field(
        default=2500,
        ge=16,
        le=20_000,
        description="Most samples one window keeps (2500 = 500 Hz over 5 s); more are dropped.",
    )
    motion_reset_seconds: float = Field(
        default=300.0,
        ge=0.0,
        le=86_400.0,
        description="A sample older than the open window by more than this means the device's "
        "clock was reset (or history is replayed): the window starts again there. A sample "
        "late by less is dropped.",
    )

    @model_validator(mode="after")
    def _hop_within_window(self) -> Self:
        if self.motion_hop_seconds > self.motion_window_seconds:
            raise ValueError(
                f"LOOM_MOTION_HOP_SECONDS ({self.motion_hop_seconds}) must not exceed "
                f"LOOM_MOTION_WINDOW_SECONDS ({self.motion_window_seconds})"
            )
        return self


def motion_settings(settings: LoomSettings) -> MotionSettings:
    """``settings`` as MotionSettings: its shared values, ``LOOM_MOTION_*`` from the env."""
    return settings_for(MotionSettings, settings)
