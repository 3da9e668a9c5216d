"""A function that does nothing: what the runtime itself costs."""

from __future__ import annotations

from loom.runtime.context import Context
from loom.runtime.event import Event
from loom.runtime.registry import function


@function(consumes=["device.state.power.raw"], produces=[], name="noop")
async def noop(event: Event, ctx: Context) -> None:
    """Takes a power reading and makes nothing."""
    return None
