"""What is speech and what is not: spoken sentences and a speech-like signal are found,
with the right times and audio; silence and noise are not."""

from __future__ import annotations

import numpy as np
import pytest

from loom.testing import assert_emitted
from tests.functions.vad.audio import (
    T0,
    chunk_event,
    chunked,
    pink_noise,
    segment_audio,
    silence,
    speech_like,
    white_noise,
)
from tests.functions.vad.conftest import VAD, Rig


def _with_silence(pcm: np.ndarray, rate: int, before: float = 1.0, after: float = 1.0):
    return np.concatenate([silence(before, rate), pcm, silence(after, rate)])


async def test_spoken_sentence_is_one_segment_with_its_audio(
    rig: Rig, spoken: tuple[np.ndarray, int]
) -> None:
    pcm, rate = spoken
    made = await rig.run(chunked(_with_silence(pcm, rate), rate, 0.5))
    (segment,) = assert_emitted(made, VAD, count=1)
    data = segment.data
    voiced = np.flatnonzero(np.abs(pcm) > 500)
    first, last = (1.0 + voiced[0] / rate) * 1000, (1.0 + voiced[-1] / rate) * 1000
    assert first - 150 <= data["start_ms"] <= first + 100
    assert last - 400 <= data["end_ms"] <= last + 150
    assert data["segment_start"].startswith("2026-11-25T08:00:0")
    assert data["sample_rate"] == 16_000
    assert data["channels"] == 1
    assert data["format"] == "wav"
    assert data["speech_probability"] > 0.7
    audio, audio_rate = segment_audio(data)
    assert audio_rate == 16_000
    assert len(audio) == (data["end_ms"] - data["start_ms"]) * 16
    assert data["model"]["name"] == "silero-vad"


async def test_speech_like_signal_is_found_without_espeak(rig: Rig) -> None:
    pcm = _with_silence(speech_like(), 16_000)
    made = await rig.run(chunked(pcm, 16_000, 1.0))
    segments = assert_emitted(made, VAD)
    covered = sum(s.data["duration_ms"] for s in segments)
    assert covered >= 2000  # of 3 s of voiced syllables
    assert all(s.data["start_ms"] >= 900 and s.data["end_ms"] <= 4300 for s in segments)


@pytest.mark.parametrize(
    "noise",
    [
        lambda: silence(5),
        lambda: white_noise(5),
        lambda: pink_noise(5),
        lambda: white_noise(5, level=0.02),
    ],
    ids=["silence", "white noise", "pink noise", "quiet white noise"],
)
async def test_silence_and_noise_are_not_speech(rig: Rig, noise) -> None:
    made = await rig.run(chunked(np.concatenate([noise(), silence(1)]), 16_000, 0.5))
    assert made == []
    assert (await rig.states.get("phone-1"))["triggered"] is False


async def test_48_khz_stereo_gives_the_same_segment_as_16_khz_mono(rig: Rig) -> None:
    mono16 = _with_silence(speech_like(rate=16_000), 16_000)
    # the same signal at 48 kHz, by linear interpolation (not the resampler under test)
    mono48 = np.interp(np.arange(len(mono16) * 3) / 3, np.arange(len(mono16)), mono16)
    mono48 = mono48.astype(np.int16)
    stereo48 = np.stack([mono48, mono48], axis=1).reshape(-1)
    one = await rig.run(chunked(mono16, 16_000, 1.0, device="a"))
    other = await rig.run(
        [
            chunk_event(
                stereo48[i : i + 96_000], 48_000, at=i / 96_000, device="b", channels=2, fmt="wav"
            )
            for i in range(0, len(stereo48), 96_000)
        ]
    )
    assert len(one) == len(other) >= 1
    for a, b in zip(one, other, strict=True):
        assert a.data["start_ms"] == pytest.approx(b.data["start_ms"], abs=70)
        assert a.data["end_ms"] == pytest.approx(b.data["end_ms"], abs=70)


async def test_wall_clock_times_follow_the_chunk_timestamps(rig: Rig) -> None:
    pcm = _with_silence(speech_like(), 16_000, before=2.0)
    (first, *_) = await rig.run(chunked(pcm, 16_000, 1.0, start=3600.0))
    start = (T0.timestamp() + 3600 + first.data["start_ms"] / 1000) * 1000
    assert first.data["segment_start"] == first.data["timestamp"]
    stamp = np.datetime64(first.data["segment_start"].rstrip("Z"), "ms").astype(np.int64)
    assert abs(int(stamp) - start) <= 1
