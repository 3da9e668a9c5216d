"""Turning synthetic signals into the raw events a device would send, and feeding them."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from loom.runtime.event import Event
from loom.testing import FunctionHarness
from tests.functions.motion.signals import Signal

RAW = "device.sensor.accelerometer.raw"


def stamp(t: float) -> str:
    """RFC 3339 with milliseconds, as phones send it."""
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def reading(t: float, x: float, y: float, z: float, *, device: str = "phone-1",
            id_: str | None = None, **extra: Any) -> Event:  # fmt: skip
    """One accelerometer sample taken at ``t`` (epoch seconds) as a raw event."""
    data = {"device_id": device, "timestamp": stamp(t), "x": x, "y": y, "z": z,
            "sampling_rate_hz": 50, **extra}  # fmt: skip
    return Event(type=RAW, data=data, id=id_ or f"{device}-{t:.3f}", source=f"/devices/{device}",
                 device_id=device)  # fmt: skip


def events(signal: Signal, *, device: str = "phone-1") -> list[Event]:
    return [
        reading(float(t), float(x), float(y), float(z), device=device)
        for t, (x, y, z) in zip(signal.t, signal.xyz, strict=True)
    ]


async def feed(harness: FunctionHarness, batch: Iterable[Event]) -> list[Event]:
    """Every event ``harness``'s function makes from ``batch``, in order."""
    made: list[Event] = []
    for event in batch:
        made.extend(await harness.call(event))
    return made


def of(made: list[Event], type_: str) -> list[dict[str, Any]]:
    return [e.data for e in made if e.type == type_]
