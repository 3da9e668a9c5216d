"""The runtime's clock check for ordered functions (per-device state)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from loom.events import RECORDED_TIME
from loom.runtime.context import Context
from loom.runtime.event import Event
from loom.runtime.invoke import PoisonEvent
from loom.runtime.registry import Registry, function
from loom.testing import FunctionHarness

registry = Registry()
RECEIVED = datetime(2026, 11, 25, 12, tzinfo=UTC)


@function(consumes=["device.state.power.raw"], name="keeps-state", ordered=True,
          registry=registry)  # fmt: skip
async def keeps_state(event: Event, ctx: Context) -> None:
    return None


@function(consumes=["device.state.power.raw"], name="stateless", registry=registry)
async def stateless(event: Event, ctx: Context) -> None:
    return None


def reading(timestamp: str) -> Event:
    data = {"device_id": "phone-1", "timestamp": timestamp, "battery_level": 50,
            "is_charging": False}  # fmt: skip
    return Event(type="device.state.power.raw", data=data, device_id="phone-1",
                 extensions={RECORDED_TIME: RECEIVED.isoformat()})  # fmt: skip


@pytest.mark.parametrize(
    ("timestamp", "problem"),
    [
        ((RECEIVED + timedelta(minutes=11)).isoformat(), "11 min ahead of when Loom received it"),
        ("2026-11-27t12:00:00z", "48.0 h ahead of when Loom received it"),  # RFC 3339 allows t, z
        ("1970-01-01T00:00:00Z", "before 2000: the clock was not set"),
    ],
)
async def test_an_ordered_function_refuses_a_clock_gone_wrong(timestamp: str, problem: str) -> None:
    with pytest.raises(PoisonEvent, match=problem):
        await FunctionHarness(keeps_state).call(reading(timestamp))


async def test_a_clock_a_little_ahead_is_taken_and_stateless_functions_take_any() -> None:
    await FunctionHarness(keeps_state).call(reading((RECEIVED + timedelta(minutes=5)).isoformat()))
    await FunctionHarness(stateless).call(reading("2026-11-27T12:00:00Z"))
