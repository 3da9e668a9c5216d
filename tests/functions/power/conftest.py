"""A device sending power readings to the power function, through the harness."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest

from functions.power.handler import handle
from functions.power.settings import PowerSettings
from loom.runtime.event import Event
from loom.runtime.state import MemoryStateStore
from loom.testing import FunctionHarness

RAW = "device.state.power.raw"
ENRICHED = "device.state.power.enriched"
PATTERNS = "device.state.power.patterns"
START = datetime.fromisoformat("2025-11-25T08:00:00+00:00")


def raw(
    minute: float,
    level: float,
    charging: bool = False,
    *,
    device: str = "phone",
    source: str | None = None,
    start: datetime = START,
    event_id: str | None = None,
) -> Event:
    """A reading ``minute`` minutes after ``start`` (its offset is the device's)."""
    data: dict[str, Any] = {
        "device_id": device,
        "timestamp": (start + timedelta(minutes=minute)).isoformat(),
        "battery_level": level,
        "is_charging": charging,
    }
    if source is not None:
        data["power_source"] = source
    return Event(type=RAW, data=data, id=event_id or f"{device}-{minute}-{level}-{charging}",
                 source=f"/devices/{device}", device_id=device)  # fmt: skip


@dataclass
class Feed:
    """Calls the function as a host would, keeping every event it made."""

    harness: FunctionHarness
    store: MemoryStateStore
    made: list[Event] = field(default_factory=list)

    async def send(self, event: Event) -> list[Event]:
        out = await self.harness.call(event)
        self.made += out
        return out

    async def reading(self, minute: float, level: float, charging: bool = False,
                      **kw: Any) -> dict[str, Any]:  # fmt: skip
        """Sends one reading; its enriched data."""
        out = await self.send(raw(minute, level, charging, **kw))
        return next(e.data for e in out if e.type == ENRICHED)

    def patterns(self, pattern: str | None = None) -> list[dict[str, Any]]:
        return [e.data for e in self.made
                if e.type == PATTERNS and pattern in (None, e.data["pattern"])]  # fmt: skip

    def sessions(self) -> list[dict[str, Any]]:
        return self.patterns("charging_session")

    def days(self) -> list[dict[str, Any]]:
        return self.patterns("daily_summary")


def make_feed(**settings: Any) -> Feed:
    store = MemoryStateStore()
    config = PowerSettings(**settings)
    return Feed(FunctionHarness(handle, state=store, settings=config), store)


@pytest.fixture
def feed() -> Feed:
    return make_feed()
