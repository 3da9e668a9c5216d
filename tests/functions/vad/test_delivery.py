"""Redeliveries, late and duplicate chunks, replays, the golden examples, and chunks that
can never be handled (dead letters with a reason)."""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from loom.runtime.invoke import PoisonEvent
from loom.testing import example_event
from tests.functions.vad.audio import RAW, chunk_event, chunked, silence, speech_like, wav_bytes
from tests.functions.vad.conftest import MakeRig, Rig

SPEECH = np.concatenate([silence(1), speech_like(), silence(1)])


async def test_the_last_chunk_redelivered_makes_the_same_segments(rig: Rig) -> None:
    for event in chunked(SPEECH, 16_000, 0.5):
        last = await rig.call(event)
        if last:  # the chunk in which the speech closed, delivered again
            again = await rig.call(event)
            assert [(e.id, e.data) for e in again] == [(e.id, e.data) for e in last]
            return
    pytest.fail("no segment closed")


async def test_a_replay_from_scratch_makes_the_same_ids(make_rig: MakeRig) -> None:
    events = chunked(SPEECH, 16_000, 0.5)
    first = await (await make_rig()).run(events)
    second = await (await make_rig()).run(events)
    assert [e.id for e in first] == [e.id for e in second]
    assert [e.data for e in first] == [e.data for e in second]
    assert all(e.data["segment_id"] == e.id for e in first)


async def test_the_state_is_plain_json_and_survives_a_round_trip(make_rig: MakeRig) -> None:
    rig = await make_rig()
    made = []
    for event in chunked(SPEECH, 16_000, 0.3):
        made += await rig.call(event)
        state, before, last = rig.states.rows["phone-1"]  # as PostgreSQL's jsonb keeps it
        rig.states.rows["phone-1"] = (json.loads(json.dumps(state)), before, last)
    whole = await (await make_rig()).run([chunk_event(SPEECH, 16_000)])
    assert [e.data for e in made] != []
    assert [e.data["end_ms"] for e in made] == [e.data["end_ms"] for e in whole]
    assert len(json.dumps(rig.states.rows["phone-1"][0])) < 8192  # idle: only a frame and pads


async def test_a_late_chunk_is_skipped_and_changes_nothing(rig: Rig) -> None:
    events = chunked(SPEECH, 16_000, 0.5)
    await rig.run(events[:5])
    before = await rig.states.get("phone-1")
    assert await rig.call(events[2]) == []  # an older chunk again, or one overtaken
    assert await rig.states.get("phone-1") == before
    rest = await rig.run(events[5:])
    whole = await rig.run(chunked(SPEECH, 16_000, 0.5, device="other"))
    assert [e.data["start_ms"] for e in rest] == [e.data["start_ms"] for e in whole]


async def test_an_older_duplicate_with_a_new_id_is_late_too(rig: Rig) -> None:
    events = chunked(SPEECH, 16_000, 0.5)
    await rig.run(events)
    before = await rig.states.get("phone-1")
    assert await rig.call(replace(events[3], id="another-id")) == []
    assert await rig.states.get("phone-1") == before


@pytest.mark.parametrize("name", ["minimal-inline-pcm", "seed-phone-wav-chunk"])
async def test_the_inline_golden_examples_are_handled(rig: Rig, name: str) -> None:
    assert await rig.call(example_event(RAW, name=name)) == []  # too short to hold speech
    state = await rig.states.get(example_event(RAW, name=name).data["device_id"])
    assert state["raw_total"] > 0


async def test_a_chunk_whose_blob_is_gone_is_a_dead_letter(rig: Rig) -> None:
    with pytest.raises(PoisonEvent, match="does not exist"):
        await rig.call(example_event(RAW, name="minimal-blob-ref"))


async def test_a_chunk_by_blob_reference_is_read_from_the_blob_store(rig: Rig) -> None:
    raw = wav_bytes(SPEECH, 16_000)
    ref = rig.blobs.put(raw, "audio/wav").as_json()
    event = chunk_event(SPEECH, 16_000, fmt="wav")
    data = {k: v for k, v in event.data.items() if k != "chunk_data"}
    made = await rig.call(replace(event, data={**data, "blob_ref": ref}))
    assert len(made) == 1
    tampered = {**ref, "sha256": hashlib.sha256(b"other").hexdigest()}
    with pytest.raises(PoisonEvent, match="sha256"):
        await rig.call(replace(event, id="x", data={**data, "blob_ref": tampered}))


def _wav_header(tag: int, channels: int, rate: int, bits: int, data: bytes) -> bytes:
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * block, block, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", len(data))
    return b"RIFF" + struct.pack("<I", len(body) + len(data)) + body + data


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"sample_rate": 44_100}, "WAV header says 16000 Hz"),
        ({"channels": 2}, "WAV header says 1 channel"),
        ({"chunk_data": base64.b64encode(b"not a wav file").decode()}, "not a RIFF/WAVE"),
        ({"format": "opus"}, "not opus"),
        (
            {"format": "pcm_s16le", "chunk_data": base64.b64encode(b"\x00\x01\x02").decode()},
            "not whole frames",
        ),
        (
            {"chunk_data": base64.b64encode(_wav_header(7, 1, 16_000, 8, b"\x00" * 64)).decode()},
            "not format 7",
        ),  # fmt: skip (µ-law)
        (
            {
                "chunk_data": base64.b64encode(
                    _wav_header(3, 1, 16_000, 32, np.array([0.1, np.nan], "<f4").tobytes())
                ).decode()
            },
            "NaN",
        ),
    ],
    ids=["rate mismatch", "channel mismatch", "not wav", "opus", "odd pcm", "mu-law", "nan"],
)
async def test_impossible_chunks_are_dead_letters(rig: Rig, change: dict, reason: str) -> None:
    event = chunk_event(silence(0.1), 16_000, fmt="wav")
    with pytest.raises(PoisonEvent, match=reason):
        await rig.call(replace(event, data={**event.data, **change}))
    assert await rig.states.get("phone-1") == {}  # nothing was kept


@pytest.mark.parametrize(("bits", "tag"), [(8, 1), (24, 1), (32, 1), (32, 3), (64, 3)])
async def test_other_wav_encodings_read_the_same(make_rig: MakeRig, bits: int, tag: int) -> None:
    reference = await (await make_rig()).run([chunk_event(SPEECH, 16_000)])
    x = SPEECH.astype(np.float64) / 32768
    if tag == 3:
        data = x.astype(f"<f{bits // 8}").tobytes()
    elif bits == 8:
        data = np.round(x * 127 + 128).astype(np.uint8).tobytes()
    elif bits == 24:
        ints = np.round(x * 8_388_607).astype("<i4")
        data = ints.view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
    else:
        data = np.round(x * 2_147_483_647).astype("<i4").tobytes()
    event = chunk_event(silence(0.1), 16_000, fmt="wav")
    raw = base64.b64encode(_wav_header(tag, 1, 16_000, bits, data)).decode()
    made = await (await make_rig()).call(replace(event, data={**event.data, "chunk_data": raw}))
    assert len(reference) == 1
    assert len(made) >= 1
    slack = 160 if bits == 8 else 32
    assert abs(made[0].data["start_ms"] - reference[0].data["start_ms"]) <= slack
    assert abs(made[-1].data["end_ms"] - reference[0].data["end_ms"]) <= slack


def test_the_test_audio_helpers_write_real_wav(tmp_path: Path) -> None:
    path = tmp_path / "x.wav"
    path.write_bytes(wav_bytes(silence(0.5), 16_000))
    assert path.stat().st_size == 44 + 16_000


async def test_the_last_chunk_resent_under_a_new_id_is_not_heard_twice(rig: Rig) -> None:
    once = await rig.run(chunked(SPEECH, 16_000, 0.5))
    twice = []
    for event in chunked(SPEECH, 16_000, 0.5, device="other"):  # each chunk posted twice
        twice += await rig.call(event)
        twice += await rig.call(replace(event, id=f"{event.id}-again"))
    assert [e.data["start_ms"] for e in twice] == [e.data["start_ms"] for e in once]
    assert [e.data["end_ms"] for e in twice] == [e.data["end_ms"] for e in once]
