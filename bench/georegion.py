"""georegion and geocode: GPS fixes/s per core through the function harness (input and output
schema checks included, in-memory state, a few saved regions), the region rule alone, and
the offline reverse geocoder's load time, memory and per-query latency.

Needs no services (`run(services)` ignores them); `python -m bench georegion` runs it.
"""

from __future__ import annotations

import asyncio
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from functions.geocode.handler import Geocode
from functions.geocode.handler import handle as geocode
from functions.geocode.offline import OfflineGeocoder, bundled_places
from functions.geocode.settings import GeocodeSettings
from functions.georegion.fixes import read_fix
from functions.georegion.geometry import Circle, parse_polygon
from functions.georegion.handler import Georegion, handle
from functions.georegion.regions import Region, StaticRegions
from functions.georegion.settings import GeoregionSettings
from functions.georegion.tracker import Rules, track
from loom.runtime.event import Event
from loom.runtime.state import MemoryStateStore
from loom.testing import FunctionHarness

TITLE = "georegion and geocode: GPS fixes/s per core (harness, in-memory state), reverse geocoding"
FIXES = int(os.environ.get("LOOM_BENCH_GEOREGION_FIXES", "20000"))
HOME = (52.52, 13.405)
M_PER_DEG = 6_371_008.8 * math.pi / 180


def _regions(count: int) -> list[Region]:
    """Half circles, half 64-vertex polygons, around Berlin; the first is home."""
    regions = [Region("home", "Home", "home", Circle(*HOME, 150))]
    for i in range(1, count):
        lat, lon = HOME[0] + 0.01 * (i % 7), HOME[1] + 0.015 * (i // 7)
        if i % 2:
            regions.append(Region(f"c{i}", f"Circle {i}", "custom", Circle(lat, lon, 200)))
            continue
        ring = [[lon + 0.003 * math.cos(a / 64 * 2 * math.pi),
                 lat + 0.002 * math.sin(a / 64 * 2 * math.pi)] for a in range(64)]  # fmt: skip
        polygon = parse_polygon({"type": "Polygon", "coordinates": [ring]})
        regions.append(Region(f"p{i}", f"Polygon {i}", "work", polygon))
    return regions


def _fixes(count: int) -> list[Event]:
    """A phone at 1 Hz walking out from home and back, with a few metres of noise."""
    events = []
    for t in range(count):
        metres = 1.4 * (t % 1200 if t % 2400 < 1200 else 1200 - t % 1200)
        lat = HOME[0] + (metres + 3 * math.sin(t)) / M_PER_DEG
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(1_795_000_000 + t))
        data = {"device_id": "bench-1", "timestamp": when, "latitude": lat,
                "longitude": HOME[1] + 2 * math.cos(t) / M_PER_DEG, "accuracy": 8.0}  # fmt: skip
        events.append(Event(type="device.sensor.gps.raw", data=data, id=f"b{t}",
                            source="/devices/bench-1", device_id="bench-1"))  # fmt: skip
    return events


async def _through(harness: FunctionHarness, events: list[Event]) -> tuple[float, int]:
    made = 0
    started = time.process_time()
    for event in events:
        made += len(await harness.call(event))
    return time.process_time() - started, made


def _row(scenario: str, fixes: int, cpu: float, made: int, detail: str = "") -> dict[str, Any]:
    return {"scenario": scenario, "fixes": fixes, "CPU s": cpu,
            "fixes/s per core": fixes / cpu, "µs per fix": cpu / fixes * 1e6,
            "events made": made, "detail": detail}  # fmt: skip


def _georegion_rows(events: list[Event]) -> list[dict[str, Any]]:
    rows = []
    settings = GeoregionSettings()
    for count in (5, 50):
        function = Georegion(settings, MemoryStateStore(), StaticRegions(_regions(count)))
        harness = FunctionHarness(handle, state=function, settings=settings)
        cpu, made = asyncio.run(_through(harness, events))
        rows.append(_row(f"georegion via harness, {count} regions", len(events), cpu, made,
                         "half circles, half 64-vertex polygons"))  # fmt: skip
    rules = Rules(60, 50, 50, 0)
    regions, fixes = _regions(5), [read_fix(e.data) for e in events]
    state: dict[str, Any] = {}
    made = 0
    started = time.process_time()
    for fix in fixes:
        state, changes = track(state, regions, fix, rules)
        made += len(changes)
    cpu = time.process_time() - started
    rows.append(_row("region rule alone (track), 5 regions", len(fixes), cpu, made,
                     "no schema checks, no state store, no event objects"))  # fmt: skip
    return rows


def _geocode_rows(events: list[Event], places: OfflineGeocoder) -> list[dict[str, Any]]:
    settings = GeocodeSettings()
    harness = FunctionHarness(geocode, state=Geocode(settings, MemoryStateStore(), places),
                              settings=settings)  # fmt: skip
    cpu, made = asyncio.run(_through(harness, events))
    row = _row("geocode via harness (offline)", len(events), cpu, made,
               "addresses: on 250 m moved (≥ 60 s apart) or every 30 min")  # fmt: skip
    latencies = []
    for event in events[:5000]:
        started = time.perf_counter()
        places.reverse(event.data["latitude"], event.data["longitude"])
        latencies.append((time.perf_counter() - started) * 1e6)
    latencies.sort()
    lookup = {"scenario": "offline reverse geocode, one point", "fixes": len(latencies),
              "µs per fix": statistics.median(latencies),
              "detail": f"p50 {statistics.median(latencies):.1f} µs, "
                        f"p99 {latencies[int(len(latencies) * 0.99)]:.1f} µs"}  # fmt: skip
    return [row, lookup]


def _cold_load() -> dict[str, Any]:
    """Seconds to import numpy/scipy and index the places, and RSS after, in a new process."""
    script = (
        "import time, resource; t = time.perf_counter()\n"
        "from functions.geocode.offline import OfflineGeocoder, bundled_places\n"
        "g = OfflineGeocoder(bundled_places())\n"
        "print(time.perf_counter() - t, len(g),"
        " resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n"
    )
    loads = []
    for _ in range(3):
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                             check=True, cwd=Path(__file__).resolve().parent.parent)  # fmt: skip
        loads.append([float(v) for v in out.stdout.split()])
    seconds, places, rss = (statistics.median(column) for column in zip(*loads, strict=True))
    return {"scenario": "offline places: import + load + index (new process, median of 3)",
            "detail": f"{seconds:.2f} s wall; {places:,.0f} places; peak RSS {rss:,.0f} MB "
                      "(the function host alone: ~65 MB)"}  # fmt: skip


def run(services: Any = None) -> list[dict[str, Any]]:
    events = _fixes(FIXES)
    places = OfflineGeocoder(bundled_places())
    rows = [*_georegion_rows(events), *_geocode_rows(events, places), _cold_load()]
    columns = ["scenario", "fixes", "CPU s", "fixes/s per core", "µs per fix", "events made",
               "detail"]  # fmt: skip
    return [{c: row.get(c) for c in columns} for row in rows]
