"""transcribe: speech segments (or raw chunks) in, word transcripts out."""

from __future__ import annotations

import asyncio
import base64
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from functions.transcribe.handler import (
    RAW,
    SEGMENT,
    WORDS,
    Transcriber,
    handle,
    open_transcribe,
)
from functions.transcribe.settings import TranscribeSettings, transcribe_source
from functions.vad.audio import to_wav
from loom.errors import ConfigError
from loom.runtime.event import Event
from loom.runtime.invoke import PoisonEvent
from loom.runtime.model_client import ModelRefused, ModelUnavailable
from loom.store import LocalBlobStore
from loom.testing import FunctionHarness, assert_emitted
from tests.models.stt.tiny import speech_like

T0 = datetime(2026, 11, 25, 8, 15, 30, 123_000, tzinfo=UTC)


def segment(device: str, pcm: np.ndarray, *, at: float = 0.0, blobs: LocalBlobStore | None = None,
            fmt: str = "wav") -> Event:  # fmt: skip
    """A media.audio.vad_filtered event of 16 kHz ``pcm``, inline or in ``blobs``."""
    start = T0 + timedelta(seconds=at)
    body = to_wav(pcm) if fmt == "wav" else pcm.astype("<i2").tobytes()
    duration = max(round(len(pcm) / 16), 1)
    data: dict[str, Any] = {
        "schema_version": "1.0", "device_id": device, "timestamp": start.isoformat(),
        "derived_from": {"type": RAW, "id": f"raw-{device}-{at}"},
        "segment_id": f"seg-{device}-{at}", "segment_start": start.isoformat(),
        "segment_end": (start + timedelta(milliseconds=duration)).isoformat(),
        "start_ms": 0, "end_ms": duration, "duration_ms": duration, "sample_rate": 16_000,
        "channels": 1, "format": fmt, "speech_probability": 0.9,
    }  # fmt: skip
    if blobs is None:
        data["audio_data"] = base64.b64encode(body).decode("ascii")
    else:
        data["audio"] = blobs.put(body, "audio/wav").as_json()
    return Event(type=SEGMENT, data=data, source=f"/devices/{device}", device_id=device)


class StandIn:
    """A model server that answers one word per request, at ``word_ms``, and keeps
    the requests; or raises ``error``."""

    def __init__(self, word_ms: int = 100, error: Exception | None = None, **answer: Any):
        self.word_ms, self.error, self.answer = word_ms, error, answer
        self.requests: list[dict[str, Any]] = []

    async def infer(self, payload: dict[str, Any]) -> dict[str, Any]:
        self.requests.append(payload)
        if self.error is not None:
            raise self.error
        word = {"word": f"w{len(self.requests)}", "start_ms": self.word_ms,
                "end_ms": self.word_ms + 200}  # fmt: skip
        return {"words": [word], "language": None, **self.answer}


def harness(model: Any, tmp_path: Path, **settings: Any) -> FunctionHarness:
    config = TranscribeSettings(**settings)
    state = Transcriber(config, LocalBlobStore(tmp_path / "blobs"))
    return FunctionHarness(handle, settings=config, models={"stt": model}, state=state)


async def test_two_devices_segments_become_word_transcripts(stt_client: Any,
                                                           tmp_path: Path) -> None:  # fmt: skip
    rig = harness(stt_client, tmp_path)
    blobs = rig.state.blobs
    phone = segment("pixel-7", speech_like(2.0, seed=1))
    laptop = segment("macbook", speech_like(1.5, seed=2), at=0.7, blobs=blobs, fmt="pcm_s16le")
    made = await asyncio.gather(rig.call(phone), rig.call(laptop))
    predictor = stt_client.predictor
    assert predictor.streams.stats.peak_busy == 2  # both in one batch
    for event, (transcript,) in zip((phone, laptop), made, strict=True):
        assert transcript.type == WORDS
        data = transcript.data
        assert data["segment_id"] == event.data["segment_id"]
        assert data["timestamp"] == event.data["segment_start"]
        assert data["device_id"] == event.data["device_id"]
        assert data["is_final"] is True
        assert data["derived_from"] == {"type": SEGMENT, "source": event.source, "id": event.id}
        assert data["language"] == "und"  # the model does not say which
        assert data["model"] == {"name": "kyutai/stt-1b-en_fr", "version": "tiny0001@1"}
        assert data["text"] == " ".join(w["word"] for w in data["words"])
        starts = [w["start_ms"] for w in data["words"]]
        assert starts == sorted(starts)
        assert all(0 <= w["start_ms"] <= w["end_ms"] <= event.data["duration_ms"]
                   for w in data["words"])  # fmt: skip
    again = await rig.call(phone)  # a redelivery makes the same event (same id)
    assert again[0].id == made[0][0].id
    assert again[0].data == made[0][0].data


async def test_long_audio_goes_in_pieces_and_their_words_are_joined(tmp_path: Path) -> None:
    model = StandIn(word_ms=100, language="en", model={"name": "stt", "version": "1"})
    rig = harness(model, tmp_path, transcribe_piece_seconds=5.0)
    (made,) = await rig.call(segment("pixel-7", speech_like(12.0, seed=3)))
    assert len(model.requests) == 3  # 12 s: three pieces of 4 s, sent at once
    assert {r["sample_rate"] for r in model.requests} == {16_000}
    assert [len(base64.b64decode(r["audio"])) for r in model.requests] == [128_000] * 3
    assert made.data["words"] == [
        {"word": "w1", "start_ms": 100, "end_ms": 300},
        {"word": "w2", "start_ms": 4100, "end_ms": 4300},
        {"word": "w3", "start_ms": 8100, "end_ms": 8300},
    ]
    assert made.data["text"] == "w1 w2 w3"
    assert made.data["language"] == "en"
    assert made.data["model"] == {"name": "stt", "version": "1"}


async def test_raw_chunks_are_transcribed_when_they_are_the_source(tmp_path: Path) -> None:
    spec = replace(handle.spec, consumes=(RAW,))  # as LOOM_TRANSCRIBE_SOURCE=device.audio.raw
    model = StandIn()
    config = TranscribeSettings()
    state = Transcriber(config, LocalBlobStore(tmp_path))
    rig = FunctionHarness(spec, settings=config, models={"stt": model}, state=state)
    stereo = np.repeat(speech_like(1.0, seed=4, rate=48_000), 2)
    chunk = Event(type=RAW, source="/devices/watch", device_id="watch", data={
        "device_id": "watch", "timestamp": T0.isoformat(), "sample_rate": 48_000,
        "channels": 2, "format": "pcm_s16le", "duration_ms": 1000,
        "chunk_data": base64.b64encode(stereo.astype("<i2").tobytes()).decode("ascii"),
    })  # fmt: skip
    (made,) = assert_emitted(await rig.call(chunk), WORDS, count=1)
    assert made.data["segment_id"] == chunk.id
    assert made.data["timestamp"] == T0.isoformat()
    assert model.requests[0]["sample_rate"] == 48_000  # mixed to mono, resampled by stt
    assert len(base64.b64decode(model.requests[0]["audio"])) == 96_000
    opus = replace(chunk, data={**chunk.data, "format": "opus"})
    with pytest.raises(PoisonEvent, match="not opus"):
        await rig.call(opus)


def test_the_source_is_a_setting_read_when_the_function_loads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert SEGMENT in handle.spec.consumes
    assert handle.spec.models == ("stt",)
    assert handle.spec.ordered
    assert handle.spec.retries
    monkeypatch.setenv("LOOM_TRANSCRIBE_SOURCE", RAW)
    assert transcribe_source() == RAW
    monkeypatch.setenv("LOOM_TRANSCRIBE_SOURCE", "media.image.camera.raw")
    with pytest.raises(ConfigError, match="LOOM_TRANSCRIBE_SOURCE"):
        transcribe_source()


async def test_silence_makes_an_empty_transcript_unless_skipped(tmp_path: Path) -> None:
    class Deaf(StandIn):
        async def infer(self, payload: dict[str, Any]) -> dict[str, Any]:
            return {"words": [], "language": None}

    quiet = segment("pixel-7", np.zeros(8000, np.int16))
    (made,) = await harness(Deaf(), tmp_path).call(quiet)
    assert made.data["text"] == ""
    assert made.data["words"] == []
    assert await harness(Deaf(), tmp_path, transcribe_skip_empty=True).call(quiet) == []


async def test_the_model_refusing_is_a_dead_letter_and_a_sleeping_one_a_retry(
    tmp_path: Path,
) -> None:
    event = segment("pixel-7", speech_like(0.5, seed=5))
    with pytest.raises(ModelRefused):
        await harness(StandIn(error=ModelRefused("no")), tmp_path).call(event)
    with pytest.raises(ModelUnavailable):
        await harness(StandIn(error=ModelUnavailable("waking")), tmp_path).call(event)


async def test_audio_that_cannot_be_read_is_a_dead_letter(tmp_path: Path) -> None:
    rig = harness(StandIn(), tmp_path)
    blobs = rig.state.blobs
    event = segment("pixel-7", speech_like(0.5, seed=6), blobs=blobs)
    wrong = {**event.data["audio"], "sha256": "0" * 64}
    with pytest.raises(PoisonEvent, match="does not match its sha256"):
        await rig.call(replace(event, data={**event.data, "audio": wrong}))
    gone = {**event.data["audio"], "uri": (tmp_path / "nothing").as_uri()}
    with pytest.raises(PoisonEvent, match="does not exist"):
        await rig.call(replace(event, data={**event.data, "audio": gone}))


async def test_the_lifespan_opens_the_blob_store_from_the_settings(tmp_path: Path) -> None:
    from loom.store import StoreSettings

    settings = StoreSettings(store_blob_url=f"file://{tmp_path}/blobs")
    async with open_transcribe(settings) as state:
        assert isinstance(state.blobs, LocalBlobStore)
        assert state.config.transcribe_language == "und"
