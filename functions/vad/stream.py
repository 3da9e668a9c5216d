"""One device's audio stream: 16 kHz samples in, closed speech segments out.

Everything that must outlive a chunk is in the state (JSON): the model's recurrent state
and the 64 samples of context before the next frame, the samples short of a whole frame,
whether speech is open (where it started, where silence began), and the audio from the
open segment's start (bounded by ``vad_max_segment_s``). So speech that crosses a chunk
boundary is one segment, however the stream was chunked.

Segments follow silero's ``get_speech_timestamps``: speech starts at a frame at or above
``threshold``; it ends once frames stay below ``neg_threshold`` for ``min_silence``; it is
kept if at least ``min_speech`` long; its audio is padded by ``speech_pad`` on both sides
(never into the segment before).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from functions.vad.audio import RATE, b64_array, from_b64, to_pcm16
from functions.vad.settings import VadSettings
from functions.vad.silero import CONTEXT, FRAME

__all__ = ["Infer", "Segment", "Stream"]

Infer = Callable[[np.ndarray, np.ndarray], Awaitable[tuple[np.ndarray, np.ndarray]]]


@dataclass(frozen=True)
class Segment:
    start: int  # 16 kHz sample offsets in the stream, padding included
    end: int
    pcm: np.ndarray  # int16 mono at 16 kHz
    probability: float
    start_time: datetime
    end_time: datetime


class Stream:
    """A stream's state as arrays and numbers; :meth:`dump` makes it JSON again."""

    def __init__(self, state: dict[str, Any], config: VadSettings) -> None:
        self.config = config
        self.pos: int = state.get("pos", 0)  # samples framed so far
        self.tail = from_b64(state.get("tail", ""), np.float32)
        context = from_b64(state.get("context", ""), np.float32)
        self.context = context if len(context) == CONTEXT else np.zeros(CONTEXT, np.float32)
        model = from_b64(state.get("model", ""), np.float32)
        self.model = model.reshape(2, 128) if model.size == 256 else np.zeros((2, 128), np.float32)
        self.audio_start: int = state.get("audio_start", 0)
        self.audio = from_b64(state.get("audio", ""), np.int16)
        self.triggered: bool = state.get("triggered", False)
        self.start: int = state.get("start", 0)
        self.temp_end: int | None = state.get("temp_end")
        self.psum: float = state.get("psum", 0.0)
        self.pn: int = state.get("pn", 0)
        self.psum_end: float = state.get("psum_end", 0.0)
        self.pn_end: int = state.get("pn_end", 0)
        self.last_end: int = state.get("last_end", 0)
        self.anchor_k: float = state.get("anchor_k", 0.0)
        anchor = state.get("anchor_time")
        self.anchor_time = datetime.fromisoformat(anchor) if anchor else None

    def dump(self) -> dict[str, Any]:
        return {
            "pos": self.pos, "tail": b64_array(self.tail), "context": b64_array(self.context),
            "model": b64_array(self.model.reshape(-1)), "audio_start": self.audio_start,
            "audio": b64_array(self.audio), "triggered": self.triggered, "start": self.start,
            "temp_end": self.temp_end, "psum": self.psum, "pn": self.pn,
            "psum_end": self.psum_end, "pn_end": self.pn_end, "last_end": self.last_end,
            "anchor_k": self.anchor_k,
            "anchor_time": self.anchor_time.isoformat() if self.anchor_time else None,
        }  # fmt: skip

    def anchor(self, k: float, when: datetime) -> None:
        """Sample ``k`` of the stream was heard at ``when`` (a chunk's start)."""
        self.anchor_k, self.anchor_time = k, when

    def time_at(self, k: int) -> datetime:
        assert self.anchor_time is not None
        return self.anchor_time + timedelta(seconds=(k - self.anchor_k) / RATE)

    async def push(self, samples: np.ndarray, infer: Infer) -> list[Segment]:
        """Frame ``samples`` (after what is left of the last push), run the model on the
        whole frames, and return the segments that closed."""
        audio = np.concatenate([self.tail, samples]) if len(self.tail) else samples
        count = len(audio) // FRAME
        self.tail = audio[count * FRAME :].astype(np.float32)
        if not count:
            return []
        body = audio[: count * FRAME].astype(np.float32).reshape(count, FRAME)
        frames = np.empty((count, CONTEXT + FRAME), np.float32)
        frames[:, CONTEXT:] = body
        frames[0, :CONTEXT] = self.context
        frames[1:, :CONTEXT] = body[:-1, -CONTEXT:]
        self.context = body[-1, -CONTEXT:].copy()
        probs, self.model = await infer(frames, self.model)
        self.audio = np.concatenate([self.audio, to_pcm16(body.reshape(-1))])
        closed = [s for i, p in enumerate(probs) if (s := self._frame(self.pos + i * FRAME, p))]
        self.pos += count * FRAME
        self._trim()
        return closed

    def _frame(self, at: int, probability: float) -> Segment | None:
        cfg, end_of_frame, p = self.config, at + FRAME, float(probability)
        if p >= cfg.vad_threshold:
            self.temp_end = None
            if not self.triggered:
                self.triggered, self.start, self.psum, self.pn = True, at, 0.0, 0
        if not self.triggered:
            return None
        self.psum, self.pn = self.psum + float(p), self.pn + 1
        if end_of_frame - self.start >= cfg.vad_max_segment_s * RATE:
            return self._close(end_of_frame, self.psum, self.pn)
        if p < cfg.neg_threshold:
            if self.temp_end is None:
                self.temp_end, self.psum_end, self.pn_end = at, self.psum - p, self.pn - 1
            if end_of_frame - self.temp_end >= cfg.vad_min_silence_ms * RATE // 1000:
                return self._close(self.temp_end, self.psum_end, self.pn_end)
        return None

    def flush(self) -> list[Segment]:
        """The stream ends here (a gap, a new recording): close what is open."""
        if not self.triggered:
            return []
        if self.temp_end is not None:
            segment = self._close(self.temp_end, self.psum_end, self.pn_end)
        else:
            segment = self._close(self.pos, self.psum, self.pn)
        return [segment] if segment else []

    def _close(self, end: int, psum: float, pn: int) -> Segment | None:
        start, self.triggered, self.temp_end = self.start, False, None
        if end - start < self.config.vad_min_speech_ms * RATE // 1000 or pn <= 0:
            return None
        pad = self.config.vad_speech_pad_ms * RATE // 1000
        first = max(start - pad, self.last_end, self.audio_start)
        last = min(end + pad, self.audio_start + len(self.audio))
        self.last_end = last
        pcm = self.audio[first - self.audio_start : last - self.audio_start].copy()
        return Segment(first, last, pcm, round(min(max(float(psum) / pn, 0.0), 1.0), 4),
                       self.time_at(first), self.time_at(last))  # fmt: skip

    def _trim(self) -> None:
        """Keep only the audio a segment may still need: from the open one's start, or
        the padding before the next frame; nothing before the last segment's end."""
        pad = self.config.vad_speech_pad_ms * RATE // 1000
        keep = (self.start if self.triggered else self.pos) - pad
        keep = max(keep, self.last_end, self.audio_start)
        if keep > self.audio_start:
            self.audio = self.audio[keep - self.audio_start :]
            self.audio_start = keep
