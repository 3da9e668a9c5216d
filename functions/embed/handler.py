"""``embed``: a text embedding of each calendar event, email and Hacker News page.

Each ``external.calendar.enriched``, ``external.email.parsed`` and
``external.hackernews.content_fetched`` event becomes one ``*.embedded`` event of the same
source: a unit vector of its text (title, body, place: see :mod:`functions.embed.sources`)
by a sentence-transformers model, all-MiniLM-L6-v2 by default, run in numpy (no torch).
The text is cut to the model's longest input (256 tokens for MiniLM); an item with no text
makes no event. The model loads once per process; concurrent deliveries share forward
passes, which run in a worker thread so the event loop stays free.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from functions.embed.batcher import Batcher
from functions.embed.encoder import SentenceEncoder, packaged_model
from functions.embed.settings import EmbedSettings, embed_settings
from functions.embed.sources import SOURCES
from loom.catalog import default_catalog
from loom.logging import get_logger
from loom.runtime.context import Context
from loom.runtime.event import Event
from loom.runtime.invoke import PoisonEvent
from loom.runtime.registry import function
from loom.settings import LoomSettings

__all__ = ["Embedder", "as_json", "handle", "load_encoder", "open_embed"]

log = get_logger("loom.function.embed")
_VERSIONS = {s.output: default_catalog()[s.output].schema_version for s in SOURCES.values()}


@dataclass(frozen=True)
class Embedder:
    """What the handler keeps between events (``ctx.state``)."""

    config: EmbedSettings
    encoder: SentenceEncoder
    batcher: Batcher


def load_encoder(config: EmbedSettings) -> SentenceEncoder:
    """The model of ``config`` (blocking: call it off the event loop)."""
    # what limits BLAS threads is process-wide: as many as LOOM_EMBED_THREADS
    threadpool_limits(limits=config.embed_threads, user_api="blas")
    return SentenceEncoder.load(
        config.embed_model_path or packaged_model(),
        max_tokens=config.embed_max_tokens,
        max_batch=config.embed_max_batch,
        batch_tokens=config.embed_batch_tokens,
    )


@asynccontextmanager
async def open_embed(settings: LoomSettings) -> AsyncIterator[Embedder]:
    """Loads the model once, off the event loop."""
    config = embed_settings(settings)
    started = time.perf_counter()
    encoder = await asyncio.to_thread(load_encoder, config)
    log.info(
        "embed.model_loaded",
        model=config.embed_model_name,
        dimensions=encoder.dimensions,
        max_tokens=encoder.max_tokens,
        seconds=round(time.perf_counter() - started, 3),
    )
    yield Embedder(config, encoder, Batcher(encoder.embed_tokens, config.embed_max_batch))


# ~250 MiB once loaded with short texts; a batch of 256-token texts adds ~45 MiB a pass.
@function(consumes=list(SOURCES), produces=sorted(_VERSIONS), lifespan=open_embed, memory="768Mi")
async def handle(event: Event, ctx: Context) -> list[Event]:
    """Text embeddings (all-MiniLM-L6-v2 by default) of calendar events, emails and HN pages."""
    embedder: Embedder = ctx.state
    source = SOURCES[event.type]
    data: dict[str, Any] = event.data
    text = source.text(data)
    if not text:
        ctx.log.debug("embed.no_text")
        return []
    try:
        tokens = await asyncio.to_thread(embedder.encoder.tokenize, text)
    except ValueError as exc:
        raise PoisonEvent(f"the text cannot be tokenized: {exc}") from None
    if not tokens.content:  # only characters the tokenizer drops (control, zero-width)
        ctx.log.debug("embed.no_tokens", chars=len(text))
        return []
    vector = await embedder.batcher.embed(tokens)
    made: dict[str, Any] = {"schema_version": _VERSIONS[source.output]}
    made.update((name, data[name]) for name in source.carried if name in data)
    made["embedding"] = {
        "model": embedder.config.embed_model_name,
        "dimensions": len(vector),
        "vector": as_json(vector),
    }
    if source.counts_chars:
        made["text_chars"] = tokens.chars
    if tokens.truncated:
        ctx.log.debug("embed.truncated", chars=len(text), embedded_chars=tokens.chars)
    return [event.derive(source.output, made, source=ctx.source)]


def as_json(vector: np.ndarray) -> list[float]:
    """The float32 values as the shortest decimals that read back as the same float32."""
    return [float(str(value)) for value in vector.astype(np.float32)]
