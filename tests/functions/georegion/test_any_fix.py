"""Any schema-valid fix, however odd, is handled or dead-lettered: never another error."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loom.catalog import default_catalog
from loom.runtime.event import Event
from loom.runtime.invoke import PoisonEvent
from tests.functions.georegion.helpers import HOME, fixes, harness, home, square

CATALOG = default_catalog()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(fixes, min_size=1, max_size=8))
def test_any_valid_fixes_make_valid_events_or_dead_letters(batch: list[dict[str, Any]]) -> None:
    h = harness([home(), square("office", HOME, half_m=300, hole_m=40)],
                georegion_dwell_seconds=0)  # fmt: skip
    reasons: list[str] = []

    async def run() -> None:
        for n, data in enumerate(batch):
            assert not CATALOG.violations("device.sensor.gps.raw", data), data
            event = Event(type="device.sensor.gps.raw", data=data, id=f"e{n}",
                          device_id=data["device_id"])  # fmt: skip
            try:
                await h.call(event)  # outputs are schema-checked by the harness
            except PoisonEvent as exc:
                reasons.append(str(exc))
        clock = ("ahead of when Loom received it", "before 2000")  # the runtime's own check
        assert all("null island" in r or any(c in r for c in clock) for r in reasons), reasons

    asyncio.run(run())
