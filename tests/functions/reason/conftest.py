"""Words events as a speech recogniser makes them, and the reason function opened on a
backend with a memory state store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from functions.reason.handler import Reason, handle, open_reason
from functions.reason.settings import ReasonSettings
from loom.runtime.event import Event
from loom.runtime.state import MemoryStateStore
from loom.testing import FunctionHarness

WORDS = "media.text.transcribed.words"
RESULT = "analysis.inferred_context.mistral_results"
T0 = datetime(2025, 6, 2, 9, 0, tzinfo=UTC)


def iso(at: float) -> str:
    """``at`` seconds after T0, as RFC 3339."""
    return (T0 + timedelta(seconds=at)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def said(
    device: str,
    segment: str,
    at: float,
    text: str,
    *,
    final: bool = True,
    pauses: dict[int, float] | None = None,
    word_seconds: float = 0.4,
) -> Event:
    """A words event of ``segment`` starting ``at`` seconds after T0: each word of ``text``
    ``word_seconds`` long, back to back, with ``pauses[i]`` seconds before word ``i``."""
    words, t = [], 0.0
    for i, word in enumerate(text.split()):
        t += (pauses or {}).get(i, 0.0)
        words.append({"word": word, "start_ms": round(t * 1000),
                      "end_ms": round((t + word_seconds) * 1000), "confidence": 0.9})  # fmt: skip
        t += word_seconds
    data: dict[str, Any] = {
        "schema_version": "1.0",
        "device_id": device,
        "timestamp": iso(at),
        "derived_from": {"type": "media.audio.vad_filtered", "id": f"vad-{segment}"},
        "segment_id": segment,
        "text": text,
        "words": words,
        "language": "en",
        "is_final": final,
    }
    return Event(type=WORDS, data=data, source=f"/devices/{device}", device_id=device)


@asynccontextmanager
async def reasoning(
    store: MemoryStateStore | None = None, **values: Any
) -> AsyncIterator[tuple[FunctionHarness, Reason]]:
    """The reason function with ``values`` as its settings, its state in ``store``."""
    settings = ReasonSettings(**values)
    async with open_reason(settings, states=store or MemoryStateStore()) as reason:
        yield FunctionHarness(handle, state=reason, settings=settings), reason
