"""``transcribe``: each speech segment's words with their times, from the stt model server.

Consumes ``media.audio.vad_filtered`` (vad's speech segments), or with
``LOOM_TRANSCRIBE_SOURCE=device.audio.raw`` every raw microphone chunk as one segment.
The audio (inline, or read from the blob store and checked against its sha256; WAV or
16-bit PCM, any rate and channel count) is mixed to mono and sent to ``stt`` as 16-bit
PCM at its own rate: the model server resamples to Mimi's 24 kHz, so 16 kHz segments
cross the wire at two thirds of the size. Audio longer than
``LOOM_TRANSCRIBE_PIECE_SECONDS`` goes in equal pieces, all at once (each a stream of
its own in the server's batch), and their words are joined in order.

One ``media.text.transcribed.words`` event per segment: its ``timestamp`` is when the
speech starts (wall clock), word times are milliseconds from there, so a word's absolute
time is ``timestamp + start_ms``. Ordered delivery keeps each device's transcripts in the
order of its speech. The model client waits out a server scaled to zero for
``LOOM_MODEL_WAKE_SECONDS``; if that is not enough (a GPU node still starting), the
delivery fails and Knative redelivers it, 1 s apart and doubling, ten times (about 17
minutes), before it becomes a dead letter. A model that refuses the audio (4xx) makes a
dead letter at once.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import math
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from functions.transcribe.settings import (
    TranscribeSettings,
    transcribe_settings,
    transcribe_source,
)
from functions.vad.audio import decode, to_pcm16
from loom.runtime.context import Context
from loom.runtime.event import Event
from loom.runtime.invoke import PoisonEvent
from loom.runtime.registry import function
from loom.settings import LoomSettings
from loom.store import BlobStore, open_blob_store, store_settings
from loom.store.media import blob_bytes, inline_bytes

SEGMENT = "media.audio.vad_filtered"
RAW = "device.audio.raw"
WORDS = "media.text.transcribed.words"
SOURCE = transcribe_source()
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
_FORMATS = ("wav", "pcm_s16le")


@dataclass(frozen=True)
class Transcriber:
    """What the handler keeps between events (``ctx.state``)."""

    config: TranscribeSettings
    blobs: BlobStore


@asynccontextmanager
async def open_transcribe(
    settings: LoomSettings, *, blobs: BlobStore | None = None
) -> AsyncIterator[Transcriber]:
    """The settings and the blob store (LOOM_STORE_BLOB_URL unless ``blobs`` is given)."""
    config = transcribe_settings(settings)
    if blobs is None:
        stored = store_settings(settings)
        blobs = open_blob_store(stored.store_blob_url, stored.store_s3_endpoint_url)
    yield Transcriber(config, blobs)


@dataclass(frozen=True)
class _Audio:
    segment_id: str
    start: str  # wall-clock time the audio starts
    fmt: str
    rate: int
    channels: int


def _describe(event: Event) -> _Audio:
    data = event.data
    if event.type == SEGMENT:
        return _Audio(data["segment_id"], data["segment_start"], data["format"],
                      data["sample_rate"], data["channels"])  # fmt: skip
    return _Audio(event.id, data["timestamp"], data.get("format", "wav"), data["sample_rate"],
                  data.get("channels", 1))  # fmt: skip


@function(
    consumes=[SOURCE],
    produces=[WORDS],
    ordered=True,
    models=["stt"],
    lifespan=open_transcribe,
    retries=10,  # 1 s doubling 10 times, about 17 min, on top of each try's own wait
    concurrency=16,  # deliveries mostly wait on the model server, which batches them
    memory="1Gi",  # a raw chunk may be 16 MiB, several at once, decoded to float
)
async def handle(event: Event, ctx: Context) -> list[Event]:
    """Words with start and end times (Kyutai STT) of each speech segment."""
    state: Transcriber = ctx.state
    config = state.config
    audio = _describe(event)
    if audio.fmt not in _FORMATS:
        raise PoisonEvent(f"transcribe reads wav and pcm_s16le audio, not {audio.fmt}")
    raw = await _audio_bytes(event.data, state.blobs)
    decoded = await asyncio.to_thread(decode, raw, audio.fmt, audio.rate, audio.channels)
    pcm = to_pcm16(decoded.samples)
    pieces = _pieces(pcm, audio.rate, config.transcribe_piece_seconds)
    client = ctx.model("stt")
    answers = await asyncio.gather(*(
        client.infer({"audio": base64.b64encode(piece.astype("<i2").tobytes()).decode("ascii"),
                      "sample_rate": audio.rate, "format": "pcm_s16le"})
        for _, piece in pieces
    ))  # fmt: skip
    duration_ms = round(1000 * len(pcm) / audio.rate)
    words: list[dict[str, Any]] = []
    for (offset, _), answer in zip(pieces, answers, strict=True):
        words += _words(answer, round(1000 * offset / audio.rate), duration_ms)
    if not words and config.transcribe_skip_empty:
        return []
    data: dict[str, Any] = {
        "schema_version": "1.0",
        "device_id": event.data["device_id"],
        "timestamp": audio.start,
        "segment_id": audio.segment_id[:128],
        "text": " ".join(w["word"] for w in words)[:100_000],
        "words": words[:20_000],
        "language": _language(answers, config.transcribe_language),
        "is_final": True,
    }
    model = _model(answers)
    if model:
        data["model"] = model
    return [event.derive(WORDS, data, source=ctx.source)]


def _pieces(pcm: np.ndarray, rate: int, seconds: float) -> list[tuple[int, np.ndarray]]:
    """``pcm`` in equal pieces of at most ``seconds``, with the sample each starts at."""
    if not len(pcm):
        return []
    count = math.ceil(len(pcm) / (seconds * rate))
    bounds = np.linspace(0, len(pcm), count + 1).round().astype(int)
    return [(int(a), pcm[a:b]) for a, b in itertools.pairwise(bounds)]


def _words(answer: dict[str, Any], offset_ms: int, duration_ms: int) -> list[dict[str, Any]]:
    out = []
    for word in answer.get("words") or []:
        text = str(word.get("word", "")).strip()[:200]
        if not text:
            continue
        start = min(max(int(word["start_ms"]) + offset_ms, 0), duration_ms)
        end = min(max(int(word["end_ms"]) + offset_ms, start), duration_ms)
        out.append({"word": text, "start_ms": start, "end_ms": end})
    return out


def _language(answers: list[dict[str, Any]], default: str) -> str:
    for answer in answers:
        language = answer.get("language")
        if isinstance(language, str) and len(language) <= 35 and _LANGUAGE.match(language):
            return language
    return default


def _model(answers: list[dict[str, Any]]) -> dict[str, str] | None:
    for answer in answers:
        model = answer.get("model")
        if isinstance(model, dict) and model.get("name"):
            found = {"name": str(model["name"])[:200]}
            if model.get("version"):
                found["version"] = str(model["version"])[:100]
            return found
    return None


async def _audio_bytes(data: dict[str, Any], blobs: BlobStore) -> bytes:
    inline = data.get("audio_data", data.get("chunk_data"))
    if inline is not None:
        return inline_bytes(inline, "the inline audio")
    ref = data.get("audio") or data["blob_ref"]
    return await asyncio.to_thread(blob_bytes, blobs, ref, "audio")
