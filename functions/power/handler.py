"""``power``: a device's battery readings, enriched and summarised.

Every ``device.state.power.raw`` reading becomes one ``device.state.power.enriched``
event (smoothed charge rate, minutes to empty or full, power source). A charging session
that ends, and a local day that ends, each become a ``device.state.power.patterns``
event. What a device's readings add up to is kept per device in the function's state.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from functions.power.reading import read
from functions.power.settings import PowerSettings
from functions.power.tracker import advance, estimates
from loom.runtime.context import Context
from loom.runtime.event import Event
from loom.runtime.registry import function
from loom.runtime.state import stateful, stateful_parts

RAW = "device.state.power.raw"
ENRICHED = "device.state.power.enriched"
PATTERNS = "device.state.power.patterns"


power_state = stateful("power", PowerSettings)  # checks LOOM_POWER_* at start, opens state


@function(consumes=[RAW], produces=[ENRICHED, PATTERNS], ordered=True, lifespan=power_state)
async def handle(event: Event, ctx: Context) -> list[Event]:
    """Charge rate, time to empty or full, charging sessions and daily battery summaries."""
    store, config = stateful_parts(ctx, PowerSettings)
    data: dict[str, Any] = event.data
    reading = read(data, now=datetime.now(UTC),
                   future_tolerance_seconds=config.power_future_tolerance_seconds)  # fmt: skip
    async with store.transition(reading.device_id, event.id) as step:
        outcome = advance(step.value, reading, config)
        step.value = outcome.state
    to_empty, to_full = estimates(reading.level, reading.charging, outcome.rate, config)
    enriched = {
        "device_id": reading.device_id,
        "timestamp": reading.timestamp,
        "battery_level": reading.level,
        "is_charging": reading.charging,
        "charge_rate_pct_per_hour": round(outcome.rate or 0.0, 2),
        "time_to_empty_minutes": to_empty,
        "time_to_full_minutes": to_full,
        "power_source": reading.source,
    }
    made = [event.derive(ENRICHED, enriched, source=ctx.source)]
    made += [
        event.derive(PATTERNS, pattern, source=ctx.source, index=i)
        for i, pattern in enumerate(outcome.patterns, start=1)
    ]
    if outcome.late:
        ctx.log.debug("power.late_reading", timestamp=reading.timestamp)
    return made
