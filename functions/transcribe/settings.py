"""Settings of the transcribe function (``LOOM_TRANSCRIBE_*`` besides the shared ``LOOM_*``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from loom.settings import LoomSettings, load_settings, settings_for

__all__ = ["TranscribeSettings", "transcribe_settings", "transcribe_source"]

Source = Literal["media.audio.vad_filtered", "device.audio.raw"]


class TranscribeSettings(LoomSettings):
    """What is transcribed, and how the transcript is reported."""

    transcribe_source: Source = Field(
        default="media.audio.vad_filtered",
        description="The audio transcribed: the speech segments of vad, or every raw "
        "microphone chunk as it is. Read when the function is loaded: it decides the "
        "function's trigger, so regenerate the manifests after changing it.",
    )
    transcribe_language: str = Field(
        default="und",
        pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$",
        description="BCP-47 tag of a transcript whose model does not say what language it "
        "heard ('und': undetermined).",
    )
    transcribe_piece_seconds: float = Field(
        default=60.0,
        ge=5.0,
        le=600.0,
        description="Longer audio goes to the model in pieces this long (each a stream of "
        "its own, all at once), within what one stt request may hold (LOOM_STT_MAX_SECONDS).",
    )
    transcribe_skip_empty: bool = Field(
        default=False,
        description="Emit nothing for audio in which no word was heard (else an empty "
        "transcript records that it was transcribed).",
    )


def transcribe_settings(settings: LoomSettings) -> TranscribeSettings:
    """``settings`` as TranscribeSettings: its shared values, ``LOOM_TRANSCRIBE_*`` from the env."""
    return settings_for(TranscribeSettings, settings)


def transcribe_source() -> str:
    """The type the function consumes (``LOOM_TRANSCRIBE_SOURCE``), read when it is loaded."""
    return load_settings(TranscribeSettings).transcribe_source
