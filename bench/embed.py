"""Text embeddings (all-MiniLM-L6-v2 in numpy): texts per CPU-second of this process, the
model alone at batch sizes 1, 8 and 32 side by side, for short, medium and long texts;
and the whole function (tokenize, embed, build the event, check its schema) with 1, 8 and
32 deliveries at once, which its batcher turns into forward passes of that many texts.

CPU time is the process's (all its threads), so the figures are per core whatever BLAS
does with threads; the model runs with one thread (LOOM_EMBED_THREADS=1). Needs no
services.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from collections.abc import Callable
from typing import Any

from functions.embed.encoder import SentenceEncoder, Tokens
from functions.embed.handler import handle, load_encoder
from functions.embed.settings import EmbedSettings
from functions.embed.sources import SOURCES
from loom.runtime.event import Event
from loom.testing import FunctionHarness, example_event

TITLE = "Text embeddings (all-MiniLM-L6-v2, numpy): texts/s per core at batch 1, 8, 32"
SECONDS = float(os.environ.get("LOOM_BENCH_EMBED_SECONDS", "2.0"))  # CPU time per measure
BATCHES = (1, 8, 32)
SENTENCES = [
    "Looks good to me, one small comment on slide 4.",
    "The quarterly numbers are in and revenue rose four percent over the last period.",
    "Can we move the planning meeting to Thursday afternoon?",
    "Loom collects events from your devices and keeps them in one place.",
    "I have tried paper, Org mode and a spreadsheet, and none of them stuck.",
    "The new release cuts the memory use of the store by a third.",
    "Please find the signed contract attached; the originals follow by post.",
]
TEXTS = {
    "calendar event (title and place)": "Weekly planning\nTorstraße 1, 10119 Berlin, Germany",
    "email (subject and a short body)": "Re: slides for Thursday\n" + " ".join(SENTENCES[:5]),
    "web page (cut to 256 tokens)": " ".join(SENTENCES * 40),
}


def _per_cpu_second(work: Callable[[], int]) -> float:
    """Texts per CPU second of ``work()`` (which returns how many it embedded), repeated."""
    work()  # warm up
    done, started = 0, time.process_time()
    while time.process_time() - started < SECONDS:
        done += work()
    return done / (time.process_time() - started)


def _model_rows(encoder: SentenceEncoder) -> list[dict[str, Any]]:
    rows = []
    for label, text in TEXTS.items():
        tokens = encoder.tokenize(text)
        row: dict[str, Any] = {"texts": label, "tokens": str(len(tokens.ids))}
        for size in BATCHES:
            batch: list[Tokens] = [tokens] * size

            def work(batch: list[Tokens] = batch) -> int:
                encoder.embed_tokens(batch)
                return len(batch)

            row[f"batch {size}"] = _per_cpu_second(work)
        row["unit"] = "texts/s per core (model)"
        rows.append(row)
    return rows


async def _function_rate(harness: FunctionHarness, events: list[Event]) -> float:
    async def round_() -> int:
        await asyncio.gather(*(harness.call(e) for e in events))
        return len(events)

    await round_()  # warm up
    done, started = 0, time.process_time()
    while time.process_time() - started < SECONDS:
        done += await round_()
    return done / (time.process_time() - started)


async def _function_rows() -> list[dict[str, Any]]:
    kinds = [
        ("calendar events", "external.calendar.enriched", {"summary": "Weekly planning"}),
        (
            "web pages",
            "external.hackernews.content_fetched",
            {"text": TEXTS["web page (cut to 256 tokens)"]},
        ),
    ]
    rows = []
    async with FunctionHarness(handle, settings=EmbedSettings(embed_threads=1)) as harness:
        for label, type_, data in kinds:
            example = example_event(type_)
            text = SOURCES[type_].text({**example.data, **data})
            tokens = harness.state.encoder.tokenize(text)
            row: dict[str, Any] = {
                "texts": f"function: {label}, deliveries at once",
                "tokens": str(len(tokens.ids)),
            }
            for size in BATCHES:
                events = [
                    dataclasses.replace(example, id=f"bench-{i}", data={**example.data, **data})
                    for i in range(size)
                ]
                row[f"batch {size}"] = await _function_rate(harness, events)
            row["unit"] = "events/s per core (function)"
            rows.append(row)
    return rows


def run(services: object = None) -> list[dict[str, Any]]:
    """The rows of the table (``python -m bench embed``; needs none of the services)."""
    from loom.logging import configure_logging

    configure_logging("WARNING")
    encoder = load_encoder(EmbedSettings(embed_threads=1))
    return [*_model_rows(encoder), *asyncio.run(_function_rows())]
