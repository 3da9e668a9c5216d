"""The power function: readings/s per core through the function harness (input and output
schema checks, per-device state in a MemoryStateStore), for one device and for 100
devices interleaved, beside the tracker alone (no harness, no checks) in the same run.

Needs no services; ``python -m bench power`` runs it."""

from __future__ import annotations

import asyncio
import os
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from functions.power.handler import handle
from functions.power.reading import read
from functions.power.settings import PowerSettings
from functions.power.tracker import advance
from loom.runtime.event import Event
from loom.runtime.state import MemoryStateStore
from loom.testing import FunctionHarness

TITLE = "Power function: readings/s per core (harness + MemoryStateStore), beside the tracker"
READINGS = int(os.environ.get("LOOM_BENCH_POWER_READINGS", "20000"))
START = datetime(2025, 11, 24, 22, 0, tzinfo=UTC)  # readings cross midnights: daily summaries


def _readings(devices: int, count: int) -> list[Event]:
    """``count`` readings, one a minute per device, devices interleaved: each drains 0.1 %
    a minute, charges 1 % a minute from 20 % to 95 % (whole percent, as phones report)."""
    levels = [30.0 + 50 * d / max(1, devices) for d in range(devices)]
    charging = [False] * devices
    events = []
    for i in range(count):
        d = i % devices
        minute = i // devices
        if charging[d] and levels[d] >= 95:
            charging[d] = False
        elif not charging[d] and levels[d] <= 20:
            charging[d] = True
        levels[d] += 1.0 if charging[d] else -0.1
        data = {"device_id": f"bench-{d}",
                "timestamp": (START + timedelta(minutes=minute, seconds=d % 60)).isoformat(),
                "battery_level": round(levels[d]), "is_charging": charging[d],
                "power_source": "usb" if charging[d] else None}  # fmt: skip
        events.append(Event(type="device.state.power.raw", data=data, id=f"r{i}",
                            source=f"/devices/bench-{d}", device_id=f"bench-{d}"))  # fmt: skip
    return events


async def _harness(events: list[Event]) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds and patterns made, through the harness."""
    harness = FunctionHarness(handle, state=MemoryStateStore(), settings=PowerSettings())
    await harness.call(events[0])  # warm: validators compile on first use
    harness.state = MemoryStateStore()
    patterns = 0
    wall, cpu = time.perf_counter(), time.process_time()
    for event in events:
        made = await harness.call(event)
        patterns += len(made) - 1
    return time.perf_counter() - wall, time.process_time() - cpu, patterns


def _tracker(events: list[Event]) -> tuple[float, float]:
    """Wall and CPU seconds of reading and advancing alone (state in a plain dict)."""
    config = PowerSettings()
    now = datetime.now(UTC)
    states: dict[str, dict[str, Any]] = {}
    wall, cpu = time.perf_counter(), time.process_time()
    for event in events:
        reading = read(event.data, now=now, future_tolerance_seconds=86_400)
        states[reading.device_id] = advance(states.get(reading.device_id, {}), reading,
                                            config).state  # fmt: skip
    return time.perf_counter() - wall, time.process_time() - cpu


def run(services: Any = None) -> list[dict[str, Any]]:
    """The rows of the table (``services`` is unused: the function needs none)."""
    rows = []
    for devices in (1, 100):
        events = _readings(devices, READINGS)
        wall, cpu, patterns = asyncio.run(_harness(events))
        alone_wall, alone_cpu = _tracker(events)
        label = "1 device" if devices == 1 else f"{devices} devices interleaved"
        rows += [
            {"measure": f"harness, {label}: readings/s per core", "value": READINGS / cpu,
             "unit": "readings/s", "detail": f"{READINGS} readings, {patterns} patterns"},
            {"measure": f"harness, {label}: wall", "value": READINGS / wall,
             "unit": "readings/s", "detail": f"{wall * 1e6 / READINGS:.1f} µs a reading"},
            {"measure": f"tracker alone, {label}: readings/s per core",
             "value": READINGS / alone_cpu, "unit": "readings/s",
             "detail": f"{alone_wall * 1e6 / READINGS:.1f} µs a reading"},
        ]  # fmt: skip
    return rows
