"""Speech end to end on the local runner: a device's microphone chunks posted to ingest
go through Kafka, the router runs vad, transcribe (the stt model in-process, loaded from
a toy checkpoint of the real architecture, as `loom dev` does when LOOM_MODEL_URLS names
no server) and store, and PostgreSQL ends up with each speech segment and its
transcript, linked by the segment's id. The toy model's words are arbitrary: what is
checked is the path, not what was said."""

from __future__ import annotations

import base64
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from fastapi.testclient import TestClient

pytest.importorskip("torch", reason="needs the models extra (torch)")
pytest.importorskip("moshi", reason="needs the models extra (moshi)")
pytest.importorskip("models.base", reason="needs the models extra (kserve)")

from functions.store.handler import handle as store
from functions.transcribe.handler import handle as transcribe
from functions.vad.handler import handle as vad
from loom.catalog import Catalog
from loom.runtime.registry import Registry
from loom.runtime.router import Router
from loom.services import LocalServices
from tests.functions.vad.audio import silence, speech_like
from tests.integration.ingest_helpers import post_batch
from tests.integration.store_helpers import store_settings
from tests.models.conftest import stt_checkpoint  # noqa: F401 - the toy checkpoint

RATE = 16_000
SEGMENTS = 2  # two bursts of speech-like sound, a second of silence between them


def _chunks(device: str, start: datetime) -> list[dict[str, Any]]:
    """Six seconds of a microphone as one-second ``device.audio.raw`` CloudEvents."""
    pcm = np.concatenate([silence(0.5), speech_like(2.0, seed=2), silence(1.0),
                          speech_like(1.5, seed=5), silence(1.0)])  # fmt: skip
    events = []
    for i in range(0, len(pcm), RATE):
        piece = pcm[i : i + RATE]
        at = (start + timedelta(seconds=i / RATE)).isoformat()
        data = {"device_id": device, "timestamp": at, "sample_rate": RATE, "channels": 1,
                "format": "pcm_s16le", "duration_ms": len(piece) * 1000 // RATE,
                "chunk_data": base64.b64encode(piece.astype("<i2").tobytes()).decode()}  # fmt: skip
        events.append({"specversion": "1.0", "id": str(uuid.uuid4()), "source": "/tests/speech",
                       "type": "device.audio.raw", "time": at, "partitionkey": device,
                       "datacontenttype": "application/json", "data": data})  # fmt: skip
    return events


def _rows(url: str, query: str, device: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(query, (device,)).fetchall()


def _count(url: str, table: str, device: str) -> int:
    return len(_rows(url, f"SELECT 1 FROM {table} WHERE device_id = %s", device))


def test_speech_posted_to_ingest_is_stored_as_segments_and_their_transcripts(
    services: LocalServices,
    catalog: Catalog,
    client: TestClient,
    device: dict[str, Any],
    ingest_settings: Any,
    stt_checkpoint: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LOOM_MODEL_URLS", raising=False)  # stt runs in this process
    for name, value in {"LOOM_STT_MODEL_DIR": str(stt_checkpoint), "LOOM_STT_DEVICE": "cpu",
                        "LOOM_STT_MAX_STREAMS": "4", "LOOM_STT_THREADS": "1"}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    name, token = device["device_id"], device["token"]
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    chunks = _chunks(name, start)
    answer = post_batch(client, token, chunks)
    assert answer.status_code == 202, answer.text

    graph = Registry()
    for fn in (store, vad, transcribe):
        graph.add(fn.spec)
    settings = store_settings(services, ingest_settings.database_url, tmp_path)
    router = Router(graph, catalog, settings).start()
    url = settings.database_url
    expected = {
        "device_audio_raw": len(chunks),
        "media_audio_vad_filtered": SEGMENTS,
        "media_text_transcribed_words": SEGMENTS,
    }
    try:
        deadline = time.monotonic() + 120
        while {t: _count(url, t, name) for t in expected} != expected:
            assert time.monotonic() < deadline, {t: _count(url, t, name) for t in expected}
            time.sleep(0.5)
    finally:
        router.stop()
    runners = {r.spec.name: r for r in router.runners}
    assert runners["transcribe"].dead_lettered == 0
    assert _count(url, "system_events_deadletter", name) == 0

    segments = _rows(url, "SELECT id, data FROM media_audio_vad_filtered WHERE device_id = %s"
                          " ORDER BY time", name)  # fmt: skip
    transcripts = dict(_rows(url, "SELECT segment_id, data FROM media_text_transcribed_words"
                                  " WHERE device_id = %s", name))  # fmt: skip
    assert set(transcripts) == {segment_id for segment_id, _ in segments}
    for segment_id, segment in segments:
        words = transcripts[segment_id]
        assert catalog.violations("media.text.transcribed.words", words) == []
        assert words["segment_id"] == segment["segment_id"] == segment_id
        assert words["timestamp"] == segment["segment_start"]
        assert words["model"] == {"name": "kyutai/stt-1b-en_fr", "version": "tiny0001@1"}
        assert words["is_final"] is True
        assert words["text"] == " ".join(w["word"] for w in words["words"])
        for word in words["words"]:
            assert 0 <= word["start_ms"] <= word["end_ms"] <= segment["duration_ms"]
    first, second = (s for _, s in segments)
    assert 400 <= first["start_ms"] < first["end_ms"] < second["start_ms"] < second["end_ms"]
    assert second["end_ms"] <= 6000
