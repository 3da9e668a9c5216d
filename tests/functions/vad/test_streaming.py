"""A device's audio is one stream across its chunks: however it is cut, speech comes out
in the same segments; long speech, gaps and new recordings close what is open."""

from __future__ import annotations

import base64
import hashlib
import itertools
import wave
from pathlib import Path

import numpy as np
import pytest

from functions.vad.audio import Resampler
from loom.store import BlobRef
from loom.testing import assert_emitted
from tests.functions.vad.audio import chunk_event, chunked, segment_audio, silence, speech_like
from tests.functions.vad.conftest import VAD, MakeRig, Rig

SPEECH = np.concatenate([silence(1), speech_like(), silence(1)])  # speech from 1 s to 4 s


def _spans(made) -> list[tuple[int, int]]:
    return [(e.data["start_ms"], e.data["end_ms"]) for e in made]


async def test_a_segment_split_across_two_chunks_comes_out_whole(make_rig: MakeRig) -> None:
    whole = await (await make_rig()).run([chunk_event(SPEECH, 16_000)])
    split_at = int(2.5 * 16_000)  # in the middle of the speech
    rig = await make_rig()
    first = await rig.call(chunk_event(SPEECH[:split_at], 16_000))
    assert first == []  # speech is still going on at the end of the first chunk
    second = await rig.call(chunk_event(SPEECH[split_at:], 16_000, at=2.5))
    assert _spans(second) == _spans(whole)
    assert np.array_equal(segment_audio(second[0].data)[0], segment_audio(whole[0].data)[0])
    assert second[0].data["speech_probability"] == whole[0].data["speech_probability"]


@pytest.mark.parametrize("seconds", [0.01, 0.1, 0.37, 1.0, 2.9])
async def test_any_chunking_gives_the_same_segments(make_rig: MakeRig, seconds: float) -> None:
    whole = await (await make_rig()).run([chunk_event(SPEECH, 16_000)])
    pieces = await (await make_rig()).run(chunked(SPEECH, 16_000, seconds))
    assert _spans(pieces) == _spans(whole)
    assert [segment_audio(e.data)[0].tobytes() for e in pieces] == [
        segment_audio(e.data)[0].tobytes() for e in whole
    ]


async def test_chunking_of_resampled_audio_hardly_matters(make_rig: MakeRig) -> None:
    at_44k = np.interp(np.arange(int(len(SPEECH) * 44_100 / 16_000)) * 16_000 / 44_100,
                       np.arange(len(SPEECH)), SPEECH).astype(np.int16)  # fmt: skip
    whole = await (await make_rig()).run([chunk_event(at_44k, 44_100)])
    pieces = await (await make_rig()).run(chunked(at_44k, 44_100, 0.3))
    assert len(whole) == len(pieces) >= 1
    for a, b in zip(whole, pieces, strict=True):
        assert abs(a.data["start_ms"] - b.data["start_ms"]) <= 32
        assert abs(a.data["end_ms"] - b.data["end_ms"]) <= 32


@pytest.mark.parametrize("rate", [8_000, 22_050, 44_100, 48_000])
def test_the_resampler_joins_pieces_as_if_whole(rate: int) -> None:
    signal = np.random.default_rng(3).standard_normal(rate * 2).astype(np.float32) * 0.1
    whole = Resampler(rate).feed(signal)
    state: dict = {}
    parts = []
    for cut in range(0, len(signal), 3_001):
        resampler = Resampler(rate, state)
        parts.append(resampler.feed(signal[cut : cut + 3_001]))
        state = resampler.state()
    joined = np.concatenate(parts)
    assert len(joined) == len(whole) > 16_000 * 2 - 400  # 20 ms held back
    assert np.abs(joined - whole).max() < 1e-3


async def test_long_speech_is_cut_at_the_longest_segment(make_rig: MakeRig) -> None:
    rig = await make_rig(vad_max_segment_s=1.0)
    made = await rig.run(chunked(SPEECH, 16_000, 0.5))
    assert len(made) >= 2
    assert all(e.data["duration_ms"] <= 1000 + 32 + 2 * 30 for e in made)  # a frame, pads
    spans = _spans(made)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))  # no overlap
    state = await rig.states.get("phone-1")
    assert len(base64.b64decode(state["audio"])) <= 2 * 16_000 * 2  # bounded audio


async def test_a_gap_closes_the_open_segment(rig: Rig) -> None:
    cut = int(2.5 * 16_000)
    assert await rig.call(chunk_event(SPEECH[:cut], 16_000)) == []
    later = await rig.call(chunk_event(silence(1), 16_000, at=60.0))  # a minute later
    (segment,) = assert_emitted(later, VAD, count=1)
    assert segment.data["start_ms"] < 1100
    assert 2400 <= segment.data["end_ms"] <= 2500
    assert (await rig.states.get("phone-1"))["pos"] == 16_000 - 16_000 % 512  # a new stream


async def test_a_new_recording_closes_the_open_segment(rig: Rig) -> None:
    cut = int(2.5 * 16_000)
    assert await rig.call(chunk_event(SPEECH[:cut], 16_000, file_id="rec-1")) == []
    made = await rig.call(chunk_event(SPEECH[cut:], 16_000, at=2.5, file_id="rec-2"))
    assert len(made) == 2  # the first recording's speech, then the second's
    assert made[0].data["end_ms"] <= 2500
    assert made[1].data["start_ms"] < 200


async def test_large_segments_go_to_the_blob_store(make_rig: MakeRig) -> None:
    rig = await make_rig(vad_inline_max_bytes=10_000)
    (segment,) = await rig.run([chunk_event(SPEECH, 16_000)])
    ref = segment.data["audio"]
    assert "audio_data" not in segment.data
    assert ref["content_type"] == "audio/wav"
    blob = rig.blobs.get(BlobRef(ref["uri"], ref["sha256"], ref["size_bytes"]))
    assert hashlib.sha256(blob).hexdigest() == ref["sha256"]
    path = Path(ref["uri"].removeprefix("file://"))
    with wave.open(str(path)) as w:
        assert w.getframerate() == 16_000
        assert w.getnframes() == (segment.data["end_ms"] - segment.data["start_ms"]) * 16


async def test_devices_are_separate_streams(rig: Rig) -> None:
    cut = int(2.5 * 16_000)
    await rig.call(chunk_event(SPEECH[:cut], 16_000, device="a"))
    await rig.call(chunk_event(silence(3), 16_000, device="b"))
    made = await rig.call(chunk_event(SPEECH[cut:], 16_000, at=2.5, device="a"))
    assert len(made) == 1
    assert made[0].data["device_id"] == "a"
