"""Fixes and regions for the georegion tests: a device walking around Berlin."""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

from functions.georegion.geometry import Circle, parse_polygon
from functions.georegion.handler import Georegion, handle
from functions.georegion.regions import Region, StaticRegions
from functions.georegion.settings import GeoregionSettings
from loom.runtime.event import Event
from loom.runtime.state import MemoryStateStore
from loom.testing import FunctionHarness

START = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
HOME = (52.52, 13.405)
METRES_PER_DEGREE = 6_371_008.8 * math.pi / 180


def north_of(point: tuple[float, float], metres: float) -> tuple[float, float]:
    return point[0] + metres / METRES_PER_DEGREE, point[1]


def east_of(point: tuple[float, float], metres: float) -> tuple[float, float]:
    return point[0], point[1] + metres / (METRES_PER_DEGREE * math.cos(math.radians(point[0])))


def home(radius_m: float = 100, device_id: str | None = None) -> Region:
    return Region("home", "Home", "home", Circle(*HOME, radius_m), device_id)


def square(region_id: str, centre: tuple[float, float], half_m: float,
           hole_m: float = 0) -> Region:  # fmt: skip
    """A square polygon region around ``centre``; with ``hole_m``, a square hole in it."""

    def ring(half: float) -> list[list[float]]:
        south, west = north_of(centre, -half)[0], east_of(centre, -half)[1]
        north, east = north_of(centre, half)[0], east_of(centre, half)[1]
        return [[west, south], [east, south], [east, north], [west, north]]

    rings = [ring(half_m)] + ([ring(hole_m)] if hole_m else [])
    polygon = parse_polygon({"type": "Polygon", "coordinates": rings})
    return Region(region_id, region_id.title(), "work", polygon)


def gps(
    seconds: float, point: tuple[float, float], accuracy: float | None = 5.0,
    device_id: str = "phone-1", **extra: Any,
) -> Event:  # fmt: skip
    """A fix ``seconds`` after START; its id names the device and the time."""
    data: dict[str, Any] = {
        "device_id": device_id,
        "timestamp": (START + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z"),
        "latitude": point[0],
        "longitude": point[1],
        **extra,
    }
    if accuracy is not None:
        data["accuracy"] = accuracy
    return Event(type="device.sensor.gps.raw", data=data, id=f"{device_id}@{seconds:g}",
                 source=f"/devices/{device_id}", device_id=device_id)  # fmt: skip


def harness(regions: Iterable[Region], **settings: Any) -> FunctionHarness:
    """The function with in-memory state and a fixed list of regions."""
    config = GeoregionSettings(**settings)
    state = Georegion(config, MemoryStateStore(), StaticRegions(list(regions)))
    return FunctionHarness(handle, state=state, settings=config)


async def feed(h: FunctionHarness, events: Iterable[Event]) -> list[Event]:
    made: list[Event] = []
    for event in events:
        made.extend(await h.call(event))
    return made


def transitions(made: list[Event]) -> list[tuple[str, str, str]]:
    return [(e.data["region_id"], e.data["transition"], e.data["timestamp"]) for e in made]


def at(seconds: float) -> str:
    return (START + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def _timestamp(moment: datetime, offset_minutes: int, lower: bool) -> str:
    text = moment.astimezone(timezone(timedelta(minutes=offset_minutes))).isoformat()
    return text.lower() if lower else text


# Any schema-valid fix: odd times and offsets (RFC 3339 lower case too), poles, null island,
# no accuracy, Android's 0, absurd accuracies and speeds.
fixes = st.fixed_dictionaries(
    {
        "device_id": st.sampled_from(["phone-1", "phone-2"]),
        "timestamp": st.builds(
            _timestamp,
            st.datetimes(datetime(1971, 1, 1), datetime(2100, 1, 1), timezones=st.just(UTC)),
            st.integers(-23 * 60, 23 * 60),
            st.booleans(),
        ),
        "latitude": st.one_of(st.floats(-90, 90), st.sampled_from([0.0, 90.0, -90.0, HOME[0]])),
        "longitude": st.one_of(st.floats(-180, 180), st.sampled_from([0.0, 180.0, HOME[1]])),
    },
    optional={
        "accuracy": st.one_of(st.none(), st.floats(0, 1e12), st.just(0)),
        "speed": st.one_of(st.none(), st.floats(0, 1e6)),
        "heading": st.one_of(st.none(), st.floats(0, 360)),
    },
)
