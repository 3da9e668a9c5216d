"""Audio the vad tests make: speech from espeak-ng, a speech-like signal that needs
nothing installed, silence and noise; and events that carry it in chunks."""

from __future__ import annotations

import base64
import io
import shutil
import subprocess
import wave
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from loom.runtime.event import Event

RAW = "device.audio.raw"
T0 = datetime(2026, 11, 25, 8, 0, 0, tzinfo=UTC)
_VOWELS = [(730, 1090, 2440), (530, 1840, 2480), (270, 2290, 3010), (570, 840, 2410),
           (300, 870, 2240)]  # fmt: skip


def espeak(text: str, tmp: Path) -> tuple[np.ndarray, int]:
    """``text`` spoken by espeak-ng (Debian's ``espeak-ng``): int16 mono and its rate."""
    binary = shutil.which("espeak-ng")
    assert binary, "espeak-ng is not installed"
    out = tmp / "speech.wav"
    subprocess.run([binary, "-w", str(out), text], check=True, capture_output=True, timeout=60)
    with wave.open(str(out)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").copy(), w.getframerate()


def _resonate(x: np.ndarray, freq: float, bandwidth: float, rate: int) -> np.ndarray:
    r = np.exp(-np.pi * bandwidth / rate)
    a1, a2 = -2 * r * np.cos(2 * np.pi * freq / rate), r * r
    y = np.zeros_like(x)
    y1 = y2 = 0.0
    for n, value in enumerate(x):
        y[n] = y0 = value - a1 * y1 - a2 * y2
        y2, y1 = y1, y0
    return y * (1 - r)


@cache
def speech_like(seconds: float = 3.0, rate: int = 16_000, seed: int = 2) -> np.ndarray:
    """Vowels and fricatives from a formant synthesiser: a glottal pulse train at a
    gliding pitch through three formant resonators, syllable by syllable. Silero takes
    it for speech (its own test of that is in test_detection). int16 mono."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    f0 = (
        130 * (1 + 0.15 * np.sin(2 * np.pi * 0.5 * t + rng.uniform(0, 6))) * (1 - 0.1 * t / seconds)
    )
    position = np.cumsum(f0 / rate) % 1.0
    flow = np.where(position < 0.6, np.sin(np.pi * position / 0.6) ** 2, 0.0)
    source = np.diff(flow, prepend=0) * 10 + 0.02 * rng.standard_normal(n)
    out = np.zeros(n)
    syllable = int(0.22 * rate)
    for start in range(0, n, syllable):
        piece = source[start : start + syllable]
        length, half = len(piece), len(piece) // 2
        voiced = np.zeros(length)
        for part in (slice(0, half), slice(half, length)):
            formants = _VOWELS[rng.integers(len(_VOWELS))]
            voiced[part] = sum(_resonate(piece[part], f, 60 + 30 * j, rate) / (j + 1)
                               for j, f in enumerate(formants))  # fmt: skip
        ramp = np.arange(length)
        voiced *= np.clip(np.minimum(ramp / (0.03 * rate), (length - ramp) / (0.05 * rate)), 0, 1)
        if rng.random() < 0.6:  # a fricative before the vowel
            c = int(0.04 * rate)
            hiss = np.diff(rng.standard_normal(c) * np.hanning(c), prepend=0)
            voiced[:c] += 0.3 * hiss * np.abs(voiced).max() / np.abs(hiss).max()
        out[start : start + length] = voiced
    return (0.5 * out / np.abs(out).max() * 32767).astype(np.int16)


def silence(seconds: float, rate: int = 16_000) -> np.ndarray:
    return np.zeros(int(seconds * rate), np.int16)


def white_noise(seconds: float, rate: int = 16_000, level: float = 0.3) -> np.ndarray:
    noise = np.random.default_rng(7).standard_normal(int(seconds * rate)) * level
    return (np.clip(noise, -1, 1) * 32767).astype(np.int16)


def pink_noise(seconds: float, rate: int = 16_000, level: float = 0.3) -> np.ndarray:
    n = int(seconds * rate)
    spectrum = np.fft.rfft(np.random.default_rng(8).standard_normal(n))
    spectrum /= np.sqrt(np.maximum(np.arange(len(spectrum)), 1))  # 1/f power
    noise = np.fft.irfft(spectrum, n)
    return (noise / np.abs(noise).max() * level * 32767).astype(np.int16)


def wav_bytes(pcm: np.ndarray, rate: int, channels: int = 1) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.astype("<i2").tobytes())
    return out.getvalue()


def chunk_event(
    pcm: np.ndarray,
    rate: int,
    *,
    at: float = 0.0,
    device: str = "phone-1",
    fmt: str = "pcm_s16le",
    channels: int = 1,
    **extra: Any,
) -> Event:
    """One ``device.audio.raw`` event of ``pcm`` (interleaved if several channels),
    heard ``at`` seconds after T0."""
    raw = wav_bytes(pcm, rate, channels) if fmt == "wav" else pcm.astype("<i2").tobytes()
    data = {
        "device_id": device,
        "timestamp": (T0 + timedelta(seconds=at)).isoformat(),
        "chunk_data": base64.b64encode(raw).decode("ascii"),
        "sample_rate": rate,
        "channels": channels,
        "format": fmt,
        "duration_ms": int(len(pcm) / channels / rate * 1000),
        **extra,
    }
    return Event(type=RAW, data=data, source=f"/devices/{device}", device_id=device)


def chunked(
    pcm: np.ndarray,
    rate: int,
    seconds: float,
    *,
    start: float = 0.0,
    channels: int = 1,
    **kw: Any,
) -> list[Event]:
    """``pcm`` (interleaved if several ``channels``) as consecutive chunks of ``seconds``."""
    step = max(int(seconds * rate), 1) * channels
    return [chunk_event(pcm[i : i + step], rate, at=start + i / channels / rate,
                        channels=channels, **kw) for i in range(0, len(pcm), step)]  # fmt: skip


def segment_audio(data: dict[str, Any]) -> tuple[np.ndarray, int]:
    """The inline WAV of a ``media.audio.vad_filtered`` event: int16 samples and rate."""
    with wave.open(io.BytesIO(base64.b64decode(data["audio_data"]))) as w:
        assert (w.getnchannels(), w.getsampwidth()) == (1, 2)
        return np.frombuffer(w.readframes(w.getnframes()), "<i2"), w.getframerate()
