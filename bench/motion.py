"""The motion function on synthetic 50 Hz walking: accelerometer samples per second on
one core through the function harness (schema checks in and out, as every host does)
with the in-memory state store, the cost of one sample (one that only joins the window,
one that closes it: features, FFT, 2-3 outputs), the handler without the harness, the
size of a device's state at a full window, and (when a PostgreSQL is at hand) the same
samples through the PostgreSQL state store, which writes one row per sample.

Samples/s per core divide the samples by this process's CPU seconds (``process_time``);
everything runs on one event loop, one core.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import Any

from bench.database import migrated_database
from functions.motion.handler import handle
from functions.motion.settings import MotionSettings
from loom.logging import get_logger
from loom.runtime.context import Context
from loom.runtime.event import Event
from loom.runtime.state import MemoryStateStore, Stateful
from loom.services import LocalServices
from loom.testing import FunctionHarness
from tests.functions.motion.feed import events
from tests.functions.motion.signals import synthesize

TITLE = "motion: accelerometer samples through the function (50 Hz, 5 s windows, 2.5 s hop)"
SECONDS = 300  # of walking at 50 Hz: 15,000 samples, 119 windows
PG_SECONDS = 30  # through PostgreSQL: 1,500 samples
RESULTS = Path(__file__).resolve().parent / "results"


def _samples(seconds: float, rate_hz: float = 50.0, device: str = "bench-1") -> list[Event]:
    return events(synthesize("walking", 11, seconds=seconds, rate_hz=rate_hz), device=device)


async def _through_harness(harness: FunctionHarness, sent: list[Event]) -> dict[str, Any]:
    joined: list[float] = []
    closed: list[float] = []
    cpu, wall = time.process_time(), time.perf_counter()
    for event in sent:
        started = time.perf_counter()
        made = await harness.call(event)
        (closed if made else joined).append(time.perf_counter() - started)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"per_core": len(sent) / cpu, "wall": len(sent) / wall, "joined": joined,
            "closed": closed}  # fmt: skip


async def _handler_alone(config: MotionSettings, sent: list[Event]) -> float:
    resources = Stateful(MemoryStateStore(), config)
    log = get_logger("bench.motion")
    cpu = time.process_time()
    for event in sent:
        ctx = Context(function="motion", settings=config, log=log, state=resources,
                      source="/loom/functions/motion")  # fmt: skip
        await handle(event, ctx)
    return len(sent) / (time.process_time() - cpu)


async def _state_bytes(config: MotionSettings, rate_hz: float) -> tuple[int, float, float]:
    """JSON size of a device's state: largest (a full window, just before it closes) and
    mean over the run; and µs to serialise the largest once."""
    store = MemoryStateStore()
    harness = FunctionHarness(handle, state=store, settings=config)
    sizes: list[tuple[int, dict[str, Any]]] = []
    for event in _samples(12, rate_hz)[int(rate_hz * 3) :]:  # past the device's first window
        await harness.call(event)
        state = await store.get("bench-1")
        sizes.append((len(json.dumps(state, separators=(",", ":"))), state))
    largest, full = max(sizes, key=lambda s: s[0])
    started, rounds = time.perf_counter(), 200
    for _ in range(rounds):
        json.dumps(full)
    dump = (time.perf_counter() - started) / rounds * 1e6
    return largest, statistics.mean(s for s, _ in sizes), dump


async def _paired_with_tiny(harness: FunctionHarness, sent: list[Event]) -> dict[str, Any]:
    """Each sample through ``harness``, each followed by one transition of a 10-byte state
    on the same store (the floor), so load from elsewhere falls on both alike."""
    samples: list[float] = []
    tiny: list[float] = []
    wall = time.perf_counter()
    for i, event in enumerate(sent):
        started = time.perf_counter()
        await harness.call(event)
        samples.append(time.perf_counter() - started)
        started = time.perf_counter()
        async with harness.state.store.transition("tiny", f"t{i}") as step:
            step.value = {"n": i}
        tiny.append(time.perf_counter() - started)
    return {"wall": len(sent) / (time.perf_counter() - wall - sum(tiny)),
            "sample": statistics.median(samples), "tiny": statistics.median(tiny)}  # fmt: skip


async def _measure(database_url: str | None) -> list[dict[str, Any]]:
    config = MotionSettings()
    sent = _samples(SECONDS)
    warm = FunctionHarness(handle, state=MemoryStateStore(), settings=config)
    await _through_harness(warm, _samples(20, device="warm-up"))
    mem = await _through_harness(FunctionHarness(handle, state=MemoryStateStore(),
                                                 settings=config), sent)  # fmt: skip
    alone = await _handler_alone(config, sent)
    size50, mean50, dump50 = await _state_bytes(config, 50)
    size100, _, _ = await _state_bytes(config, 100)
    us = 1e6
    rows = [
        {"measure": f"harness + memory state: {len(sent):,} samples, one device",
         "value": mem["per_core"], "unit": "samples/s per core", "goal": "≥ 5,000 (100 phones)"},
        {"measure": "  mean cost of one sample", "value": us / mem["per_core"], "unit": "µs",
         "goal": ""},
        {"measure": f"  median, sample joining the window ({len(mem['joined']):,})",
         "value": statistics.median(mem["joined"]) * us, "unit": "µs", "goal": ""},
        {"measure": f"  median, sample closing a window ({len(mem['closed'])}: features, "
                    "FFT, 2-3 outputs)",
         "value": statistics.median(mem["closed"]) * us, "unit": "µs", "goal": ""},
        {"measure": "handler alone (no harness, no schema checks)", "value": alone,
         "unit": "samples/s per core", "goal": ""},
        {"measure": "state of one device, full window at 50 Hz (JSON)", "value": size50,
         "unit": "bytes", "goal": "< 8 KB"},
        {"measure": "  mean over the run (the window refills from half each hop)",
         "value": mean50, "unit": "bytes", "goal": ""},
        {"measure": "  json.dumps of the full one (a PostgreSQL store writes it and the "
                    "one before, per sample)", "value": dump50, "unit": "µs", "goal": ""},
        {"measure": "state of one device, full window at 100 Hz (JSON)", "value": size100,
         "unit": "bytes", "goal": ""},
    ]  # fmt: skip
    if database_url:
        pg = MotionSettings(database_url=database_url)
        async with FunctionHarness(handle, settings=pg) as harness:  # the lifespan's store
            await _through_harness(harness, _samples(10, device="pg-warm-up"))
            db = await _paired_with_tiny(harness, _samples(PG_SECONDS, device="pg-1"))
        rows += [
            {"measure": f"harness + PostgreSQL state: {PG_SECONDS * 50:,} samples, one device",
             "value": db["wall"], "unit": "samples/s (wall)", "goal": ""},
            {"measure": "  median cost of one sample", "value": db["sample"] * us, "unit": "µs",
             "goal": ""},
            {"measure": "  median PostgreSQL transition of a 10-byte state, in turn with "
                        "them (the floor)", "value": db["tiny"] * us, "unit": "µs", "goal": ""},
        ]  # fmt: skip
    return rows


def run(services: LocalServices | None = None) -> list[dict[str, Any]]:
    return asyncio.run(_measure(migrated_database(services)))
