"""``vad``: speech segments out of each device's raw microphone audio (Silero VAD).

Each ``device.audio.raw`` chunk (WAV or 16-bit PCM, inline or by blob reference, any rate
and channel count) is mixed to mono, resampled to 16 kHz and run through Silero VAD in
32 ms frames. Speech that ends becomes one ``media.audio.vad_filtered`` event with its
start and end (stream offsets and wall-clock times) and its audio as a 16 kHz mono WAV:
inline when small, else in the blob store. The stream's state is kept per device, so a
segment that spans chunks comes out whole. Concurrent deliveries share model calls.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from functions.vad.audio import RATE, decode, to_wav
from functions.vad.batcher import Batcher
from functions.vad.chunks import advance
from functions.vad.settings import VadSettings, vad_settings
from functions.vad.silero import load_backend, silero_version
from functions.vad.stream import Segment
from loom.catalog import default_catalog
from loom.runtime.context import Context
from loom.runtime.event import Event
from loom.runtime.registry import function
from loom.runtime.state import StateStore, open_state_store
from loom.settings import LoomSettings
from loom.store import BlobStore, open_blob_store, store_settings
from loom.store.media import media_bytes

RAW = "device.audio.raw"
VAD = "media.audio.vad_filtered"
_ROOM = 4096  # bytes of an event besides its audio_data: ids, times, the source reference


@dataclass(frozen=True)
class Vad:
    """What the handler keeps between events (``ctx.state``)."""

    config: VadSettings
    states: StateStore
    blobs: BlobStore
    batcher: Batcher
    model: dict[str, str]

    @property
    def inline_max_bytes(self) -> int:
        """Largest WAV sent inline: base64 of it and the rest must fit the type's limit."""
        fits = (default_catalog()[VAD].max_bytes - _ROOM) * 3 // 4
        wanted = self.config.vad_inline_max_bytes
        return fits if wanted is None else min(wanted, fits)


@asynccontextmanager
async def open_vad(
    settings: LoomSettings,
    *,
    states: StateStore | None = None,
    blobs: BlobStore | None = None,
) -> AsyncIterator[Vad]:
    """Loads the model and opens the per-device state (PostgreSQL unless ``states`` is
    given) and the blob store (LOOM_STORE_BLOB_URL unless ``blobs`` is given)."""
    config = vad_settings(settings)
    backend = await asyncio.to_thread(load_backend, config.vad_backend, config.vad_threads)
    model = {"name": "silero-vad", "version": f"{silero_version()} ({backend.name})"}
    if blobs is None:
        stored = store_settings(settings)
        blobs = open_blob_store(stored.store_blob_url, stored.store_s3_endpoint_url)
    batcher = Batcher(backend, max_batch=config.vad_max_batch)
    if states is not None:
        yield Vad(config, states, blobs, batcher, model)
        return
    async with open_state_store(settings, "vad") as store:
        yield Vad(config, store, blobs, batcher, model)


@function(consumes=[RAW], produces=[VAD], ordered=True, lifespan=open_vad)
async def handle(event: Event, ctx: Context) -> list[Event]:
    """Speech segments (Silero VAD) of each device's microphone audio, with their audio."""
    vad: Vad = ctx.state
    data: dict[str, Any] = event.data
    device = data["device_id"]
    when = _time(data["timestamp"])
    raw = await media_bytes(data, vad.blobs, inline="chunk_data", ref="blob_ref", what="chunk")
    chunk = await asyncio.to_thread(
        decode, raw, data.get("format", "wav"), data["sample_rate"], data.get("channels", 1)
    )
    # The model runs before the state's transaction, so no connection or row lock is held
    # while it does and concurrent devices share model calls (the batcher); the transaction
    # then checks the state is still what the model started from.
    before = await vad.states.peek(device, event.id)
    outcome = await advance(copy.deepcopy(before), chunk, when, data.get("file_id"),
                            vad.config, vad.batcher.infer)  # fmt: skip
    async with vad.states.transition(device, event.id) as step:
        if step.value != before:  # another delivery for this device got in between
            outcome = await advance(step.value, chunk, when, data.get("file_id"), vad.config,
                                    vad.batcher.infer)  # fmt: skip
        step.value = outcome.state
    if outcome.late:
        ctx.log.warning("vad.late_chunk", timestamp=data["timestamp"])
    made = []
    for i, segment in enumerate(outcome.segments):
        made.append(await _segment_event(event, segment, i, device, vad, ctx.source))
    return made


async def _segment_event(
    event: Event, segment: Segment, index: int, device: str, vad: Vad, source: str
) -> Event:
    wav = await asyncio.to_thread(to_wav, segment.pcm)
    start_ms, end_ms = segment.start * 1000 // RATE, segment.end * 1000 // RATE
    data: dict[str, Any] = {
        "schema_version": "1.0",
        "device_id": device,
        "timestamp": _iso(segment.start_time),
        "segment_start": _iso(segment.start_time),
        "segment_end": _iso(segment.end_time),
        "start_ms": start_ms,
        "end_ms": end_ms,
        "duration_ms": max(end_ms - start_ms, 1),
        "sample_rate": RATE,
        "channels": 1,
        "format": "wav",
        "speech_probability": segment.probability,
        "model": vad.model,
    }
    if len(wav) <= vad.inline_max_bytes:
        data["audio_data"] = base64.b64encode(wav).decode("ascii")
    else:  # content-addressed: a redelivery writes the same blob again, harmlessly
        ref = await asyncio.to_thread(vad.blobs.put, wav, "audio/wav")
        data["audio"] = ref.as_json()
    made = event.derive(VAD, {**data, "segment_id": "-"}, source=source, index=index)
    return dataclasses.replace(made, data={**made.data, "segment_id": made.id})


def _time(text: str) -> datetime:
    when = datetime.fromisoformat(text)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
