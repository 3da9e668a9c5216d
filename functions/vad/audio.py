"""Audio in and out: a chunk's bytes to mono float samples, 16 kHz resampling that carries
its edges from chunk to chunk, WAV out, and arrays as JSON (base64) for the state."""

from __future__ import annotations

import base64
import math
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import soxr

from loom.runtime.invoke import PoisonEvent

__all__ = [
    "RATE",
    "Decoded",
    "Resampler",
    "b64_array",
    "decode",
    "from_b64",
    "to_wav",
]

RATE = 16_000  # what Silero VAD takes and what the segments carry
_PCM, _FLOAT, _EXTENSIBLE = 1, 3, 0xFFFE
_EDGE_S = 0.02  # input carried across chunk edges on each side, so the filter sees through


@dataclass(frozen=True)
class Decoded:
    samples: np.ndarray  # float32 mono in [-1, 1]
    rate: int
    channels: int


def decode(raw: bytes, fmt: str, rate: int, channels: int) -> Decoded:
    """The chunk's samples, channels averaged. ``rate``/``channels`` are what the device
    said; a WAV header that disagrees is a dead letter (one of the two is wrong)."""
    if fmt == "pcm_s16le":
        if len(raw) % (2 * channels):
            raise PoisonEvent(
                f"pcm_s16le chunk of {len(raw)} bytes is not whole frames of {channels} "
                "channel(s) x 2 bytes"
            )
        frames = np.frombuffer(raw, dtype="<i2").reshape(-1, channels)
        return Decoded(_mono(frames.astype(np.float32) / 32768.0), rate, channels)
    if fmt == "wav":
        decoded = _decode_wav(raw)
        if decoded.rate != rate:
            raise PoisonEvent(f"the WAV header says {decoded.rate} Hz, sample_rate says {rate}")
        if decoded.channels != channels:
            raise PoisonEvent(
                f"the WAV header says {decoded.channels} channel(s), channels says {channels}"
            )
        return decoded
    raise PoisonEvent(f"vad reads wav and pcm_s16le audio, not {fmt}")


def _decode_wav(raw: bytes) -> Decoded:
    if len(raw) < 12 or raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        raise PoisonEvent("format is wav but the bytes are not a RIFF/WAVE file")
    fmt: tuple[int, int, int, int] | None = None
    at = 12
    while at + 8 <= len(raw):
        name, size = raw[at : at + 4], struct.unpack_from("<I", raw, at + 4)[0]
        body = raw[at + 8 : at + 8 + size]
        if name == b"fmt ":
            if len(body) < 16:
                raise PoisonEvent("the WAV fmt chunk is truncated")
            tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", body)
            if tag == _EXTENSIBLE and len(body) >= 26:
                tag = struct.unpack_from("<H", body, 24)[0]  # the sub-format GUID's first two
            fmt = (tag, channels, rate, bits)
        elif name == b"data":
            if fmt is None:
                raise PoisonEvent("the WAV data chunk comes before its fmt chunk")
            return _wav_samples(body, *fmt)  # a streamed header's size may overstate: cut
        at += 8 + size + (size & 1)
    raise PoisonEvent("the WAV file has no fmt and data chunks")


def _wav_samples(body: bytes, tag: int, channels: int, rate: int, bits: int) -> Decoded:
    if channels < 1 or not 1000 <= rate <= 384_000:
        raise PoisonEvent(f"the WAV header's {channels} channel(s) at {rate} Hz are impossible")
    width = bits // 8
    if (tag, bits) not in {(_PCM, 8), (_PCM, 16), (_PCM, 24), (_PCM, 32), (_FLOAT, 32),
                           (_FLOAT, 64)}:  # fmt: skip
        raise PoisonEvent(f"vad reads PCM and float WAV, not format {tag} with {bits} bits")
    usable = len(body) - len(body) % (width * channels)
    data = body[:usable]
    if tag == _FLOAT:
        values = np.frombuffer(data, dtype=f"<f{width}").astype(np.float32)
        if not np.isfinite(values).all():
            raise PoisonEvent("the float WAV holds NaN or infinite samples")
        values = np.clip(values, -1.0, 1.0)
    elif bits == 8:
        values = (np.frombuffer(data, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    elif bits == 24:
        b = np.frombuffer(data, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        ints = (b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)) << 8 >> 8  # sign-extend
        values = ints.astype(np.float32) / 8_388_608.0
    else:
        values = np.frombuffer(data, dtype=f"<i{width}").astype(np.float32) / float(2 ** (bits - 1))
    return Decoded(_mono(values.reshape(-1, channels)), rate, channels)


def _mono(frames: np.ndarray) -> np.ndarray:
    mono = np.array(frames[:, 0], dtype=np.float32)
    for channel in range(1, frames.shape[1]):  # column sums: far faster than mean(axis=1)
        mono += frames[:, channel]
    if frames.shape[1] > 1:
        mono /= frames.shape[1]
    return mono


class Resampler:
    """To 16 kHz in pieces that join as if resampled whole.

    Only whole blocks of ``down`` input samples (``up`` output samples) are resampled, with
    ``edge`` input samples of context on each side: the last ``edge`` of the input already
    turned into output (``history``) and, held back until the next chunk, ``edge`` more
    (``pending``, with any part block). The output lags the input by that much (20 ms).
    """

    def __init__(self, rate: int, state: dict[str, Any] | None = None) -> None:
        self.rate = rate
        gcd = math.gcd(rate, RATE)
        self.up, self.down = RATE // gcd, rate // gcd
        self.edge = self.down * math.ceil(_EDGE_S * rate / self.down)
        state = state or {}
        self.history = from_b64(state.get("history", ""), np.float32)
        self.pending = from_b64(state.get("pending", ""), np.float32)

    def feed(self, samples: np.ndarray) -> np.ndarray:
        if self.rate == RATE:
            return samples
        buffer = np.concatenate([self.history, self.pending, samples])
        start = len(self.history)
        ready = (len(buffer) - start - self.edge) // self.down * self.down
        if ready <= 0:
            self.pending = buffer[start:]
            return np.zeros(0, np.float32)
        stop = start + ready
        window = buffer[: stop + self.edge]
        out = soxr.resample(window, self.rate, RATE, quality="HQ")
        first = start // self.down * self.up
        piece = np.asarray(out[first : first + ready // self.down * self.up], dtype=np.float32)
        self.history = buffer[max(stop - self.edge, 0) : stop]
        self.pending = buffer[stop:]
        return piece

    def state(self) -> dict[str, Any]:
        if self.rate == RATE:
            return {}
        return {"history": b64_array(self.history), "pending": b64_array(self.pending)}


def to_wav(pcm: np.ndarray, rate: int = RATE) -> bytes:
    """Mono 16-bit PCM ``pcm`` (int16) as a WAV file."""
    body = pcm.astype("<i2").tobytes()
    header = struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + len(body), b"WAVE", b"fmt ", 16,
                         _PCM, 1, rate, rate * 2, 2, 16, b"data", len(body))  # fmt: skip
    return header + body


def to_pcm16(samples: np.ndarray) -> np.ndarray:
    pcm: np.ndarray = np.round(np.clip(samples, -1.0, 32767 / 32768) * 32768.0).astype(np.int16)
    return pcm


def b64_array(values: np.ndarray) -> str:
    """An array's bytes (little-endian) as base64, for the JSON state."""
    return base64.b64encode(np.ascontiguousarray(values).astype(values.dtype.newbyteorder("<"))
                            .tobytes()).decode("ascii")  # fmt: skip


def from_b64(text: str, dtype: type[np.generic]) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype=np.dtype(dtype).newbyteorder("<")).astype(
        dtype
    )
