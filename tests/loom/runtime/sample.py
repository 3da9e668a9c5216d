"""A small function for the runtime tests, registered on a registry of its own."""

from __future__ import annotations

from loom.runtime.context import Context
from loom.runtime.event import Event
from loom.runtime.registry import Registry, function

registry = Registry()


@function(
    consumes=["device.state.power.raw"],
    produces=["device.state.power.enriched", "device.state.power.patterns"],
    name="power-echo",
    registry=registry,
)
async def power_echo(event: Event, ctx: Context) -> Event:
    """Annotates a power reading; a full battery also emits a (made-up) pattern event."""
    data = event.data
    if data.get("battery_level") == 13:
        raise RuntimeError("unlucky battery level")
    enriched = event.derive("device.state.power.enriched", {
        "device_id": data["device_id"], "timestamp": data["timestamp"],
        "battery_level": data["battery_level"], "is_charging": data["is_charging"],
        "charge_rate_pct_per_hour": 0.0, "time_to_empty_minutes": None,
        "time_to_full_minutes": None, "power_source": data.get("power_source") or "battery",
    }, source=ctx.source)  # fmt: skip
    if data["battery_level"] >= 100:
        ctx.emit(event.derive("device.state.power.patterns", {
            "device_id": data["device_id"], "timestamp": data["timestamp"],
            "pattern": "charging_session", "session_start": data["timestamp"],
            "session_end": data["timestamp"], "start_level": 100, "end_level": 100,
            "energy_pct": 0,
        }, source=ctx.source, index=1))  # fmt: skip
    return enriched


@function(consumes=["device.state.power.raw"], produces=["device.state.power.enriched"],
          name="liar", registry=registry)  # fmt: skip
async def liar(event: Event, ctx: Context) -> Event:
    """Makes an event it never declared."""
    return event.derive("motion.events.significant", {"x": 1}, source=ctx.source)
