"""Settings of the vad function (``LOOM_VAD_*`` besides the shared ``LOOM_*``)."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, model_validator

from loom.settings import LoomSettings, settings_for

__all__ = ["VadSettings", "vad_settings"]


class VadSettings(LoomSettings):
    """Which Silero VAD runs, and how its per-frame speech probabilities become segments
    (the same knobs as silero's ``get_speech_timestamps``)."""

    vad_backend: Literal["onnx", "numpy", "torch"] = Field(
        default="onnx",
        description="onnx: the ONNX models shipped in the silero-vad wheel, on onnxruntime "
        "(no torch); numpy: the same weights in numpy matrix products, 2-3x faster per core "
        "(needs threadpoolctl); torch: the wheel's TorchScript model (needs torch installed).",
    )
    vad_threads: int = Field(
        default=1, ge=1, le=64, description="CPU threads one model call may use."
    )
    vad_threshold: float = Field(
        default=0.5,
        gt=0,
        lt=1,
        description="A frame (32 ms) at or above this speech probability is speech.",
    )
    vad_neg_threshold: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        description="Speech goes on until a frame falls below this (hysteresis); unset: "
        "threshold - 0.15, as silero does.",
    )
    vad_min_speech_ms: int = Field(
        default=250, ge=0, le=60_000, description="Shorter speech is dropped (a click, a cough)."
    )
    vad_min_silence_ms: int = Field(
        default=200,
        ge=32,
        le=60_000,
        description="Speech ends after this much silence; shorter pauses stay in one segment.",
    )
    vad_speech_pad_ms: int = Field(
        default=30,
        ge=0,
        le=2_000,
        description="Audio kept before and after each segment (never overlapping the one before).",
    )
    vad_max_segment_s: float = Field(
        default=30.0,
        ge=1.0,
        le=600.0,
        description="A segment this long is closed and the speech goes on in a new one; it "
        "bounds the audio kept in the per-device state.",
    )
    vad_max_gap_ms: int = Field(
        default=2_000,
        ge=0,
        le=3_600_000,
        description="A chunk starting this much later than the previous one ended is a new "
        "stream: the open segment is closed and the model starts afresh.",
    )
    vad_inline_max_bytes: int | None = Field(
        default=None,
        ge=0,
        description="Segment audio up to this size travels inline (audio_data), larger goes "
        "to the blob store (audio, LOOM_STORE_BLOB_URL); unset: as large as the catalog's "
        "size limit of media.audio.vad_filtered allows.",
    )
    vad_max_batch: int = Field(
        default=64,
        ge=1,
        le=4096,
        description="Most streams (concurrent deliveries) in one model call.",
    )

    @property
    def neg_threshold(self) -> float:
        if self.vad_neg_threshold is not None:
            return self.vad_neg_threshold
        return max(self.vad_threshold - 0.15, 0.01)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.vad_neg_threshold is not None and self.vad_neg_threshold > self.vad_threshold:
            raise ValueError("vad_neg_threshold must not exceed vad_threshold")
        if self.vad_speech_pad_ms > self.vad_min_silence_ms:
            raise ValueError("vad_speech_pad_ms must not exceed vad_min_silence_ms")
        return self


def vad_settings(settings: LoomSettings) -> VadSettings:
    """``settings`` as VadSettings: its shared values, ``LOOM_VAD_*`` from the env."""
    return settings_for(VadSettings, settings)
