"""Settings of the reason function (``LOOM_REASON_*`` besides the shared ``LOOM_*``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from loom.errors import ConfigError
from loom.settings import LoomSettings, settings_for

__all__ = ["ReasonSettings", "reason_settings"]


class ReasonSettings(LoomSettings):
    """Which language model reasons over utterances and documents, and how utterances are
    cut out of one device's words."""

    reason_backend: Literal["ollama", "transformers"] = Field(
        default="ollama",
        description="ollama: an Ollama server (LOOM_REASON_OLLAMA_URL) with its structured "
        "outputs; transformers: a causal LM in this process (LOOM_REASON_MODEL_DIR) "
        "constrained by outlines (needs the models extra).",
    )
    reason_model: str = Field(
        default="mistral-small3.2",
        min_length=1,
        max_length=200,
        description="The Ollama model tag (pull it first: `ollama pull mistral-small3.2`); "
        "with the transformers backend, the name results carry (unset: the directory's name).",
    )
    reason_ollama_url: str = Field(
        default="http://localhost:11434",
        pattern=r"^https?://",
        description="Base URL of the Ollama server.",
    )
    reason_model_dir: Path | None = Field(
        default=None,
        description="A transformers causal-LM directory (config.json, weights, tokenizer) for "
        "LOOM_REASON_BACKEND=transformers. Read from disk only, never downloaded.",
    )
    reason_timeout_seconds: float = Field(
        default=300.0,
        gt=0,
        le=3600,
        description="How long one answer may take (an Ollama server loading the model into "
        "GPU memory first takes a minute or more); longer is retried like a server that is down.",
    )
    reason_context_tokens: int = Field(
        default=8192,
        ge=512,
        le=131_072,
        description="Context window asked of Ollama (num_ctx): the prompt and the answer "
        "together. Ollama's own default is smaller and silently drops the start of longer "
        "prompts.",
    )
    reason_max_tokens: int = Field(
        default=1024,
        ge=16,
        le=32_768,
        description="Most tokens of one answer (Ollama's num_predict, transformers' "
        "max_new_tokens); an answer cut there is not valid JSON and is asked again once.",
    )
    reason_temperature: float = Field(
        default=0.15,
        ge=0,
        le=2,
        description="Sampling temperature (0: greedy). The seed comes from the prompt, so "
        "one input asked again gets the same answer.",
    )
    reason_max_chars: int = Field(
        default=1000,
        ge=8,
        le=20_000,
        description="Longest text the model may write in one field (the summary, an entity's "
        "name), in characters, and never more than the catalog schema allows.",
    )
    reason_max_items: int = Field(
        default=20,
        ge=1,
        le=200,
        description="Most items the model may list (entities), and never more than the catalog "
        "schema allows.",
    )
    reason_pause_seconds: float = Field(
        default=2.0,
        gt=0,
        le=600,
        description="A pause between two words longer than this ends an utterance.",
    )
    reason_max_utterance_seconds: float = Field(
        default=60.0,
        ge=1,
        le=3600,
        description="An utterance that would last longer is ended before the word that would "
        "make it so.",
    )
    reason_max_utterance_words: int = Field(
        default=300,
        ge=1,
        le=5000,
        description="An utterance is ended when it has this many words.",
    )
    reason_final_ends_utterance: bool = Field(
        default=True,
        description="A final segment (is_final) ends the utterance: a result as soon as the "
        "segment is transcribed. False: utterances run across segments until a pause or a "
        "length limit, so close segments of one conversation make one result, which then "
        "comes when the next words arrive.",
    )
    reason_min_utterance_words: int = Field(
        default=3,
        ge=1,
        le=1000,
        description="Utterances with fewer words ('uh', 'okay') make no result.",
    )
    reason_reset_seconds: float = Field(
        default=300.0,
        ge=0,
        le=86_400,
        description="Words this much older than the last utterance's end mean the device's "
        "clock went back or history is replayed: the window starts again there. Older by "
        "less, they are late and dropped.",
    )
    reason_document_max_chars: int = Field(
        default=12_000,
        ge=200,
        le=500_000,
        description="Characters of a document given to the model (headers and text); the text "
        "is cut there. About 4 characters a token in English: keep it well under 4 x "
        "(LOOM_REASON_CONTEXT_TOKENS - LOOM_REASON_MAX_TOKENS).",
    )
    reason_document_device: str = Field(
        default="external",
        min_length=1,
        max_length=128,
        description="device_id of results about documents that name no device (results need "
        "one; archived pages and posts often come from scrapers, not devices).",
    )

    def check(self) -> None:
        """What single fields cannot say: raises ConfigError at start."""
        if self.reason_backend == "transformers" and self.reason_model_dir is None:
            raise ConfigError("LOOM_REASON_BACKEND=transformers needs LOOM_REASON_MODEL_DIR")
        if self.reason_min_utterance_words > self.reason_max_utterance_words:
            raise ConfigError(
                f"LOOM_REASON_MIN_UTTERANCE_WORDS ({self.reason_min_utterance_words}) must not "
                f"exceed LOOM_REASON_MAX_UTTERANCE_WORDS ({self.reason_max_utterance_words})"
            )

    @property
    def model_name(self) -> str:
        """The model's name as results carry it."""
        if (
            self.reason_backend == "transformers"
            and "reason_model" not in self.model_fields_set
            and self.reason_model_dir is not None
        ):
            return self.reason_model_dir.name or self.reason_model
        return self.reason_model


def reason_settings(settings: LoomSettings) -> ReasonSettings:
    """``settings`` as ReasonSettings: its shared values, ``LOOM_REASON_*`` from the env."""
    return settings_for(ReasonSettings, settings)
