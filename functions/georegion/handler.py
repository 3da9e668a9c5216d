"""``georegion``: GPS fixes in, ``location.georegion.detected`` out when a device enters,
leaves (or, if asked, stays in) one of its saved regions.

Per device the state store keeps the last accepted fix and, per region, inside/outside,
since when, and a pending change; the saved regions come from PostgreSQL (cached).
See :mod:`functions.georegion.tracker` for the rule, :mod:`functions.georegion.fixes` for
the fixes that are dead letters (null island) or ignored (late, teleport).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from functions.georegion.fixes import accept_fix, read_fix
from functions.georegion.geometry import Circle
from functions.georegion.regions import PostgresRegions, RegionSource
from functions.georegion.settings import GeoregionSettings, georegion_settings
from functions.georegion.tracker import Change, Rules, track
from loom.runtime.context import Context
from loom.runtime.event import Event
from loom.runtime.registry import function
from loom.runtime.state import StateStore, open_state_store
from loom.settings import LoomSettings

__all__ = ["Georegion", "handle", "open_georegion"]

OUTPUT = "location.georegion.detected"


@dataclass
class Georegion:
    """What the handler keeps between events (``ctx.state``)."""

    settings: GeoregionSettings
    store: StateStore  # per-device state
    regions: RegionSource

    @property
    def rules(self) -> Rules:
        s = self.settings
        return Rules(s.georegion_dwell_seconds, s.georegion_margin_m,
                     s.georegion_default_accuracy_m, s.georegion_dwell_report_seconds)  # fmt: skip


@asynccontextmanager
async def open_georegion(settings: LoomSettings) -> AsyncIterator[Georegion]:
    """The state store and the saved regions, both on LOOM_DATABASE_URL (one pool)."""
    config = georegion_settings(settings)
    async with open_state_store(config, "georegion") as store:
        yield Georegion(
            config, store, PostgresRegions(store.pool, config.georegion_regions_ttl_seconds)
        )


@function(consumes=["device.sensor.gps.raw"], produces=[OUTPUT], ordered=True,
          lifespan=open_georegion)  # fmt: skip
async def handle(event: Event, ctx: Context) -> list[Event]:
    """Enter and exit events of saved georegions, with hysteresis and a dwell time."""
    georegion: Georegion = ctx.state
    fix = read_fix(event.data)
    # Read before the state's transaction: a refresh needs a connection of its own.
    candidates = await georegion.regions.for_device(fix.device_id)
    settings = georegion.settings
    changes: list[Change] = []
    async with georegion.store.transition(fix.device_id, event.id) as step:
        state = dict(step.value)
        verdict = accept_fix(state, fix, settings.georegion_default_accuracy_m)
        coarse = fix.accuracy_or(settings.georegion_default_accuracy_m) > (
            settings.georegion_max_accuracy_m
        )
        if verdict != "accepted":
            ctx.log.info("georegion.fix_ignored", reason=verdict)
        elif not coarse:  # a coarse fix moves the track on, but no region
            state["regions"], changes = track(state.get("regions", {}), candidates, fix,
                                              georegion.rules)  # fmt: skip
        step.value = state
    return [
        event.derive(OUTPUT, _data(change, fix.device_id), source=ctx.source, index=i)
        for i, change in enumerate(changes)
    ]


def _data(change: Change, device_id: str) -> dict[str, Any]:
    region = change.region
    data: dict[str, Any] = {
        "schema_version": "1.0",
        "device_id": device_id,
        "timestamp": change.timestamp,
        "region_id": region.region_id,
        "region_name": region.name,
        "region_kind": region.kind,
        "transition": change.transition,
        "latitude": change.latitude,
        "longitude": change.longitude,
        "distance_m": round(change.distance_m, 1),
    }
    if isinstance(region.shape, Circle):
        data["radius_m"] = region.shape.radius_m
    if change.dwell_seconds is not None:
        data["dwell_seconds"] = round(change.dwell_seconds, 3)
    return data
