"""``geocode``: GPS fixes in, ``location.address.geocoded`` out, a few per device per hour.

A phone may send a fix a second; an address a second is noise (and more than a public
Nominatim allows). A device gets an address when it has none yet, when it has moved
``LOOM_GEOCODE_MIN_DISTANCE_M`` from where it got the last one, or every
``LOOM_GEOCODE_REFRESH_SECONDS`` when it stays put, and never more often than every
``LOOM_GEOCODE_MIN_INTERVAL_SECONDS`` (device time, so a replay makes the same choices).

Per device the state store keeps the last accepted fix and where and when the last
address was made. Fixes are checked as in ``georegion`` (null island is a dead letter;
late fixes and teleports are ignored).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from functions.geocode.offline import Address, OfflineGeocoder, bundled_places
from functions.geocode.online import Nominatim
from functions.geocode.settings import GeocodeSettings, geocode_settings
from functions.georegion.fixes import UNKNOWN_ACCURACY_M, Fix, accept_fix, read_fix
from functions.georegion.geometry import distance_m
from loom.logging import get_logger
from loom.runtime.context import Context
from loom.runtime.event import Event
from loom.runtime.registry import function
from loom.runtime.state import StateStore, open_state_store
from loom.settings import LoomSettings

__all__ = ["Geocode", "handle", "open_geocode"]

OUTPUT = "location.address.geocoded"
log = get_logger("loom.function.geocode")


@dataclass
class Geocode:
    """What the handler keeps between events (``ctx.state``)."""

    settings: GeocodeSettings
    store: StateStore  # per-device state
    offline: OfflineGeocoder
    online: Nominatim | None = None

    def due(self, state: dict[str, Any], fix: Fix) -> bool:
        """Whether ``fix`` gets an address, given the device's last one (``state["sent"]``)."""
        s = self.settings
        if fix.accuracy_or(0.0) > s.geocode_max_accuracy_m:
            return False
        sent = state.get("sent")
        if sent is None:
            return True
        waited = fix.t - float(sent["t"])
        if waited < s.geocode_min_interval_seconds:
            return False
        moved = distance_m(sent["lat"], sent["lon"], fix.latitude, fix.longitude)
        return moved >= s.geocode_min_distance_m or waited >= s.geocode_refresh_seconds

    def offline_address(self, fix: Fix) -> Address | None:
        address = self.offline.reverse(fix.latitude, fix.longitude)
        too_far = (address.distance_km or 0.0) > self.settings.geocode_max_place_km
        return None if too_far else address


@asynccontextmanager
async def open_geocode(settings: LoomSettings) -> AsyncIterator[Geocode]:
    """The places index (loaded once, off the event loop), the online client if configured,
    and the state store on LOOM_DATABASE_URL."""
    config = geocode_settings(settings)
    started = time.perf_counter()
    offline = await asyncio.to_thread(
        OfflineGeocoder, config.geocode_places_file or bundled_places()
    )
    log.info("geocode.places_loaded", places=len(offline),
             seconds=round(time.perf_counter() - started, 3))  # fmt: skip
    async with AsyncExitStack() as stack:
        online = Nominatim.from_settings(config)
        if online is not None:
            stack.push_async_callback(online.aclose)
        store = await stack.enter_async_context(open_state_store(config, "geocode"))
        yield Geocode(config, store, offline, online)


@function(consumes=["device.sensor.gps.raw"], produces=[OUTPUT], ordered=True,
          lifespan=open_geocode)  # fmt: skip
async def handle(event: Event, ctx: Context) -> list[Event]:
    """City, region and country of GPS fixes, when the device moved or time passed."""
    geocode: Geocode = ctx.state
    fix = read_fix(event.data)
    online = None
    if geocode.online is not None:
        # Asked before the state's transaction, so that no row stays locked (and no pooled
        # connection held) while a slow server answers; the transaction decides again.
        # (the state before this event, also when it is the last one delivered again)
        before = dict(await geocode.store.peek(fix.device_id, event.id))
        if accept_fix(before, fix, UNKNOWN_ACCURACY_M) == "accepted" and geocode.due(before, fix):
            online = await geocode.online.reverse(fix.latitude, fix.longitude)
    address = None
    async with geocode.store.transition(fix.device_id, event.id) as step:
        state = dict(step.value)
        verdict = accept_fix(state, fix, UNKNOWN_ACCURACY_M)
        if verdict != "accepted":
            ctx.log.info("geocode.fix_ignored", reason=verdict)
        elif geocode.due(state, fix):
            address = online or geocode.offline_address(fix)
            # tried, found or not: the next try waits as if it had been found
            state["sent"] = {"t": fix.t, "lat": fix.latitude, "lon": fix.longitude}
        step.value = state
    if address is None:
        return []
    return [event.derive(OUTPUT, _data(address, fix), source=ctx.source)]


def _data(address: Address, fix: Fix) -> dict[str, Any]:
    data: dict[str, Any] = {
        "schema_version": "1.0",
        "device_id": fix.device_id,
        "timestamp": fix.timestamp,
        "latitude": fix.latitude,
        "longitude": fix.longitude,
        "city": address.city,
        "admin1": address.admin1,
        "country_code": address.country_code,
        "provider": address.provider,
    }
    optional = {"admin2": address.admin2, "display_name": address.display_name,
                "distance_km": address.distance_km}  # fmt: skip
    data.update({k: v for k, v in optional.items() if v is not None})
    return data
