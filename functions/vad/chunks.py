"""A device's next chunk against its state: in order, late, or the start of a new stream.

A chunk older than the last one seen is late (a redelivery of an older event, or one
overtaken): it is skipped and the state is left as it was, since audio cannot be put
back into a stream that has moved on. A chunk that starts more than ``vad_max_gap_ms``
after the last one ended, or changes rate, channels or recording (``file_id``), starts
a new stream: the open segment is closed first and the model starts from scratch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from functions.vad.audio import RATE, Decoded, Resampler
from functions.vad.settings import VadSettings
from functions.vad.stream import Infer, Segment, Stream

__all__ = ["Outcome", "advance"]


@dataclass
class Outcome:
    state: dict[str, Any]
    segments: list[Segment] = field(default_factory=list)
    late: bool = False


# A chunk that starts this far inside audio already heard is a resend, not clock jitter.
RESENT_OVERLAP_MS = 250


async def advance(
    state: dict[str, Any],
    chunk: Decoded,
    when: datetime,
    file_id: str | None,
    config: VadSettings,
    infer: Infer,
) -> Outcome:
    """Feed ``chunk`` (heard from ``when`` on) into the device's stream ``state``."""
    segments: list[Segment] = []
    if state:
        gap = (when - datetime.fromisoformat(state["next_ts"])) / timedelta(milliseconds=1)
        if when <= datetime.fromisoformat(state["last_ts"]) or gap < -RESENT_OVERLAP_MS:
            # older than the last chunk, the last one sent again under a new id, or starting
            # well inside audio already heard: not fed twice
            return Outcome(state, late=True)
        same = (state["rate"], state["channels"], state.get("file_id")) == (
            chunk.rate, chunk.channels, file_id)  # fmt: skip
        if not same or gap > config.vad_max_gap_ms:
            old = Stream(state, config)
            segments += old.flush()
            state = {}
    stream = Stream(state, config)
    resampler = Resampler(chunk.rate, state.get("resampler"))
    heard = state.get("raw_total", 0)
    stream.anchor(heard * RATE / chunk.rate, when)
    segments += await stream.push(resampler.feed(chunk.samples), infer)
    length = timedelta(seconds=len(chunk.samples) / chunk.rate)
    return Outcome(
        {
            **stream.dump(),
            "resampler": resampler.state(),
            "raw_total": heard + len(chunk.samples),
            "rate": chunk.rate,
            "channels": chunk.channels,
            "file_id": file_id,
            "last_ts": when.isoformat(),
            "next_ts": (when + length).isoformat(),
        },
        segments,
    )
