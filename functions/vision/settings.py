"""Settings of the vision function (``LOOM_VISION_*`` besides the shared ``LOOM_*``)."""

from __future__ import annotations

from pydantic import Field

from loom.settings import LoomSettings, settings_for

__all__ = ["VisionSettings", "vision_settings"]


class VisionSettings(LoomSettings):
    """How images are sent to the vlm model server."""

    vision_max_side: int = Field(
        default=1344,
        ge=32,
        le=8192,
        description="Images larger than this on their longer side are scaled down to it "
        "(aspect kept, turned upright) before they are sent; smaller ones go as they came.",
    )
    vision_max_pixels: int = Field(
        default=50_000_000,
        ge=1024,
        le=500_000_000,
        description="Larger images (width x height, read from the header) are dead letters.",
    )
    vision_prompt: str | None = Field(
        default=None,
        min_length=1,
        max_length=4000,
        description="What the model is asked about each image; unset: the model server's "
        "own prompt, which names the fields it fills.",
    )


def vision_settings(settings: LoomSettings) -> VisionSettings:
    """``settings`` as VisionSettings: its shared values, ``LOOM_VISION_*`` from the env."""
    return settings_for(VisionSettings, settings)
