"""Settings of the vlm model server (``LOOM_VLM_*``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from loom.settings import LoomSettings

__all__ = ["DEFAULT_STORAGE_URI", "VlmSettings"]

MiB = 1024 * 1024
# MiniCPM-V 4.6 (SigLIP2 + Qwen3.5-0.8B, 1.3B parameters) is native to transformers>=5.7:
# no code of its own to trust. Its processor needs torchvision.
DEFAULT_STORAGE_URI = "hf://openbmb/MiniCPM-V-4.6"


class VlmSettings(LoomSettings):
    """Where the weights are, what a request may hold, and how long each part of the
    answer may grow (every bound is also capped by the catalog's own)."""

    vlm_storage_uri: str = Field(
        default=DEFAULT_STORAGE_URI,
        description="Where the weights come from: KServe's storage initializer copies them "
        "into LOOM_VLM_MODEL_DIR. Also the model's name in results when LOOM_VLM_MODEL_NAME "
        "is unset (the hub id of hf://…, else the last part of the path).",
    )
    vlm_model_dir: str = Field(
        default="/mnt/models",
        description="Local directory of a transformers image-text-to-text model and its "
        "processor (with a chat template). Nothing is ever downloaded.",
    )
    vlm_model_name: str | None = Field(
        default=None, max_length=200, description="Name reported with each result."
    )
    vlm_model_version: str | None = Field(
        default=None, max_length=100, description="Version reported with each result, if any."
    )
    vlm_trust_remote_code: bool = Field(
        default=False,
        description="Run Python code shipped with the weights. Only for checkpoints whose own "
        "code registers an image-text-to-text class (older MiniCPM-V releases ship code; "
        "4.6 needs none).",
    )
    vlm_device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto", description="Where the model runs; auto: the GPU when there is one."
    )
    vlm_dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        default="auto", description="Weights' precision; auto: bfloat16 on a GPU, else float32."
    )
    vlm_backend: Literal["outlines_core", "llguidance", "xgrammar"] = Field(
        default="outlines_core",
        description="outlines backend that forces the JSON Schema. outlines_core builds an "
        "index of every token per state at load (about a minute and several GiB for a 250k "
        "vocabulary at the default bounds); llguidance, when installed, computes masks lazily.",
    )
    vlm_max_image_bytes: int = Field(
        default=16 * MiB, ge=1024, le=256 * MiB, description="Largest encoded image taken."
    )
    vlm_max_pixels: int = Field(
        default=50_000_000,
        ge=1024,
        le=500_000_000,
        description="Largest image taken, in pixels (width x height), checked before decoding.",
    )
    vlm_max_side: int = Field(
        default=1344,
        ge=32,
        le=8192,
        description="Images are scaled down to this longest side (aspect kept) before the "
        "model sees them.",
    )
    vlm_max_prompt_chars: int = Field(
        default=4000, ge=1, le=100_000, description="Longest prompt a request may bring."
    )
    vlm_caption_max_chars: int = Field(
        default=300, ge=1, le=10_000, description="Longest caption the model may write."
    )
    vlm_ocr_max_chars: int = Field(
        default=1000, ge=0, le=100_000, description="Most text read off the image (ocr_text)."
    )
    vlm_name_max_chars: int = Field(
        default=40,
        ge=1,
        le=200,
        description="Longest short text the model writes: the scene, each object's label.",
    )
    vlm_max_objects: int = Field(
        default=12, ge=0, le=500, description="Most objects named per image."
    )
    vlm_temperature: float = Field(
        default=0.0,
        ge=0.0,
        le=2.0,
        description="0: greedy decoding (the same image gives the same answer); above: sampling.",
    )
    vlm_max_batch: int = Field(
        default=8,
        ge=1,
        le=256,
        description="Most concurrent requests decoded together in one generate call.",
    )
    vlm_chat_template_kwargs: dict[str, Any] = Field(
        default_factory=lambda: {"enable_thinking": False},
        description="Variables for the processor's chat template, as JSON; only those the "
        "template uses are passed (MiniCPM-V 4.6 would think aloud before the JSON).",
    )
    vlm_warmup: bool = Field(
        default=True,
        description="Run one short generation at load, so the first request does not pay "
        "for compiling the token-masking kernel.",
    )
