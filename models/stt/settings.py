"""Settings of the stt model server (``LOOM_STT_*``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from loom.settings import LoomSettings

__all__ = ["SttSettings"]


class SttSettings(LoomSettings):
    """Where the checkpoint is, how many streams share one batch, and how long a request
    may be."""

    stt_model_dir: str = Field(
        default="/mnt/models",
        description="A Kyutai STT checkpoint directory (config.json, the LM and Mimi "
        "safetensors, the sentencepiece model), where KServe's storage initializer puts "
        "LOOM_STT_STORAGE_URI. Nothing is ever downloaded here.",
    )
    stt_storage_uri: str = Field(
        default="hf://kyutai/stt-1b-en_fr",
        description="Where the weights come from (KServe's storageUri); its repository is "
        "the model name reported with each transcript.",
    )
    stt_device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto", description="Where the model runs; auto: the GPU when there is one."
    )
    stt_dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        default="auto", description="The LM's weights; auto: bfloat16 on a GPU, float32 on CPU."
    )
    stt_max_streams: int = Field(
        default=128,
        ge=1,
        le=4096,
        description="Batch slots: speech segments transcribed at once, stepped together one "
        "80 ms frame at a time. Each slot holds the LM's and Mimi's attention caches (about "
        "110 MB for stt-1b in bfloat16), allocated at start: an 80 GB GPU holds about 600.",
    )
    stt_max_queued: int = Field(
        default=1024,
        ge=0,
        le=100_000,
        description="Requests that wait for a free slot; beyond this the server answers 503 "
        "and clients try again later.",
    )
    stt_max_seconds: float = Field(
        default=120.0,
        gt=0,
        le=3600,
        description="Longest audio in one request; longer is refused (400).",
    )
    stt_flush_seconds: float | None = Field(
        default=None,
        ge=0,
        le=30,
        description="Silence fed after each segment so the words the model says late come "
        "out; unset: the checkpoint's audio delay plus 1 s, as Kyutai's own inference does.",
    )
    stt_language: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$",
        description="BCP-47 tag reported with each transcript; unset: none (the model does "
        "not say which language it heard).",
    )
    stt_threads: int | None = Field(
        default=None,
        ge=1,
        le=256,
        description="CPU threads torch may use (CPU only; unset: torch's default).",
    )
    stt_warmup: bool = Field(
        default=True,
        description="Step the full batch a few times at start, so CUDA graphs are captured "
        "before the first request rather than during it.",
    )
