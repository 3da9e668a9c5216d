"""The apps function on synthetic phone days: lifecycle and screen events per second on
one core through the function harness (schema checks in and out, as every host does)
with the in-memory state store, beside a no-op function on the same events through the
same harness (what the harness and the schema checks alone cost), the handler without
the harness, the size of a device's state, and (when a PostgreSQL is at hand) the same
events through the PostgreSQL state store, which writes one row per event.

A phone day: pickups (screen on, unlock, a few apps in turn — some launched, some
backgrounded, some left for the next one to replace — then screen off and lock) with
pauses between. Each device uploads both inputs every 5 minutes, the two batches in
either order, and once a day comes back from 45 minutes offline with both backlogs,
app events first: the function sees the two interleaved out of time order, as it
does from two Kafka topics.

Events/s per core divide the events by this process's CPU seconds (``process_time``);
everything runs on one event loop, one core.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.database import migrated_database
from functions.apps.handler import handle
from functions.apps.settings import AppsSettings
from loom.events import RECORDED_TIME
from loom.logging import get_logger
from loom.runtime.context import Context
from loom.runtime.event import Event
from loom.runtime.registry import Registry, function
from loom.runtime.state import MemoryStateStore
from loom.services import LocalServices
from loom.testing import FunctionHarness

TITLE = "apps: lifecycle + screen events through the function (synthetic phone days)"
DEVICES = int(os.environ.get("LOOM_BENCH_APPS_DEVICES", "40"))
PICKUPS = int(os.environ.get("LOOM_BENCH_APPS_PICKUPS", "60"))  # per device and day
PG_DEVICES = 2
UPLOAD, OFFLINE = 300, 2700  # seconds: a phone's upload cycle, and one outage a day
RESULTS = Path(__file__).resolve().parent / "results"
APP, SYSTEM = "os.events.app_lifecycle.raw", "os.events.system.raw"
DAILY = "os.events.app_usage.daily"
PACKAGES = [
    "com.android.chrome", "org.thoughtcrime.securesms", "com.google.android.apps.maps",
    "com.spotify.music", "com.whatsapp", "com.google.android.gm", "com.instagram.android",
    "org.telegram.messenger", "com.google.android.youtube", "com.android.camera2",
]  # fmt: skip
_noop_registry = Registry()


@function(consumes=[APP, SYSTEM], name="apps-noop", registry=_noop_registry)
async def _noop(event: Event, ctx: Context) -> None:
    """The same inputs, nothing done: the harness and its schema checks alone."""
    return None


def _event(device: str, n: int, moment: datetime, type_: str, data: dict[str, Any]) -> Event:
    stamp = moment.isoformat().replace("+00:00", "Z")
    received = (moment + timedelta(seconds=5)).isoformat().replace("+00:00", "Z")
    return Event(type=type_, data={"device_id": device, "timestamp": stamp, **data},
                 id=f"{device}-{n}", source=f"/devices/{device}", device_id=device,
                 extensions={RECORDED_TIME: received})  # fmt: skip


def phone_day(device: str, pickups: int, seed: int) -> list[Event]:
    """One device's day, as the function receives it: each input in its own order, the
    two interleaved by upload (every ``UPLOAD`` seconds, and one offline backlog)."""
    rng = random.Random(seed)
    start = now = datetime(2026, 11, 20, 7, tzinfo=UTC)
    apps: list[Event] = []
    screens: list[Event] = []

    def system(kind: str, category: str) -> None:
        screens.append(_event(device, len(apps) + len(screens), now, SYSTEM,
                              {"event_type": kind, "event_category": category}))  # fmt: skip

    def lifecycle(kind: str, package: str, **extra: Any) -> None:
        apps.append(_event(device, len(apps) + len(screens), now, APP,
                           {"app_identifier": package, "event_type": kind,
                            "app_name": package.rsplit(".", 1)[-1], **extra}))  # fmt: skip

    for _ in range(pickups):
        system("screen_on", "screen")
        now += timedelta(seconds=rng.uniform(0.5, 3))
        system("device_unlock", "lock")
        for _ in range(rng.randint(1, 6)):
            package = rng.choice(PACKAGES)
            if rng.random() < 0.3:
                lifecycle("launch", package)
            lifecycle("foreground", package)
            used = rng.uniform(5, 600)
            now += timedelta(seconds=used)
            if rng.random() < 0.6:  # else the next app's foreground is the only sign
                lifecycle("background", package, duration_seconds=int(used))
            now += timedelta(seconds=rng.uniform(0.1, 2))
        system("screen_off", "screen")
        now += timedelta(seconds=rng.uniform(0.1, 5))
        system("device_lock", "lock")
        now += timedelta(seconds=rng.uniform(60, 1800))
    offline = rng.uniform(0, (now - start).total_seconds() - OFFLINE)

    def upload(event: Event) -> float:
        """When the device sends ``event``: the end of its upload cycle, or of the outage."""
        t = (datetime.fromisoformat(event.data["timestamp"]) - start).total_seconds()
        return offline + OFFLINE if offline <= t < offline + OFFLINE else (t // UPLOAD + 1) * UPLOAD

    merged: list[Event] = []
    for when in sorted({upload(e) for e in apps + screens}):
        batches = [[e for e in apps if upload(e) == when],
                   [e for e in screens if upload(e) == when]]  # fmt: skip
        if when != offline + OFFLINE and rng.random() < 0.5:
            batches.reverse()
        merged.extend(batches[0] + batches[1])
    return merged


def workload(devices: int, pickups: int, prefix: str = "bench") -> list[Event]:
    """Every device's day, the devices' events taken round-robin (as partitions mix)."""
    days = [phone_day(f"{prefix}-{d}", pickups, seed=d) for d in range(devices)]
    out: list[Event] = []
    for i in range(max(len(day) for day in days)):
        out.extend(day[i] for day in days if i < len(day))
    return out


async def _through(harness: FunctionHarness, sent: list[Event]) -> dict[str, Any]:
    made = days = 0
    cpu, wall = time.process_time(), time.perf_counter()
    for event in sent:
        out = await harness.call(event)
        made += len(out)
        days += sum(e.type == DAILY for e in out)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"per_core": len(sent) / cpu, "wall": len(sent) / wall, "made": made - days,
            "days": days}  # fmt: skip


async def _handler_alone(config: AppsSettings, sent: list[Event]) -> float:
    store, log = MemoryStateStore(), get_logger("bench.apps")
    cpu = time.process_time()
    for event in sent:
        ctx = Context(function="apps", settings=config, log=log, state=store,
                      source="/loom/functions/apps")  # fmt: skip
        await handle(event, ctx)
    return len(sent) / (time.process_time() - cpu)


async def _state_bytes(config: AppsSettings) -> tuple[int, float]:
    """JSON size of one device's state after each of its events: largest and mean."""
    store = MemoryStateStore()
    harness = FunctionHarness(handle, state=store, settings=config)
    sizes = []
    for event in phone_day("size", PICKUPS, seed=0):
        await harness.call(event)
        sizes.append(len(json.dumps(await store.get("size"), separators=(",", ":"))))
    return max(sizes), statistics.mean(sizes)


async def _tiny_transitions(store: Any, count: int) -> float:
    """Median seconds of one state-store transition whose state is ``{"n": i}``."""
    took = []
    for i in range(count):
        started = time.perf_counter()
        async with store.transition("tiny", f"t{i}") as step:
            step.value = {"n": i}
        took.append(time.perf_counter() - started)
    return statistics.median(took)


async def _measure(database_url: str | None) -> list[dict[str, Any]]:
    config = AppsSettings()
    sent = workload(DEVICES, PICKUPS)
    await _through(FunctionHarness(handle, state=MemoryStateStore(), settings=config),
                   workload(4, 10, prefix="warm-up"))  # fmt: skip
    store = MemoryStateStore()
    mem = await _through(FunctionHarness(handle, state=store, settings=config), sent)
    late = sum(row[0]["late"] for row in store.rows.values())
    largest, mean = await _state_bytes(config)
    noop = await _through(FunctionHarness(_noop, settings=config), sent)
    alone = await _handler_alone(config, sent)
    apps = sum(e.type == APP for e in sent)
    rows = [
        {"measure": f"harness + memory state: {len(sent):,} events ({apps:,} app, "
                    f"{len(sent) - apps:,} screen/lock), {DEVICES} devices",
         "value": mem["per_core"], "unit": "events/s per core", "goal": "≥ 5,000"},
        {"measure": "  mean cost of one event", "value": 1e6 / mem["per_core"], "unit": "µs",
         "goal": ""},
        {"measure": "  sessions made", "value": mem["made"], "unit": "events", "goal": ""},
        {"measure": "  daily usage summaries made (days that ended)", "value": mem["days"],
         "unit": "events", "goal": ""},
        {"measure": "  events dropped as late", "value": late, "unit": "events", "goal": "0"},
        {"measure": "no-op function, same events, same harness (schema checks only)",
         "value": noop["per_core"], "unit": "events/s per core", "goal": ""},
        {"measure": "  apps ÷ no-op", "value": mem["per_core"] / noop["per_core"],
         "unit": "ratio", "goal": ""},
        {"measure": "handler alone (no harness, no schema checks)", "value": alone,
         "unit": "events/s per core", "goal": ""},
        {"measure": "state of one device over its day, largest (JSON; the outage's "
                    "backlog waits in it)", "value": largest, "unit": "bytes", "goal": "< 16 KB"},
        {"measure": "  mean over its events", "value": mean, "unit": "bytes", "goal": ""},
    ]  # fmt: skip
    if database_url:
        pg = AppsSettings(database_url=database_url)
        few = workload(PG_DEVICES, PICKUPS // 2, prefix="pg")
        async with FunctionHarness(handle, settings=pg) as harness:  # the lifespan's store
            await _through(harness, workload(1, 5, prefix="pg-warm-up"))
            db = await _through(harness, few)
            floor = await _tiny_transitions(harness.state.store, len(few))
        rows += [
            {"measure": f"harness + PostgreSQL state: {len(few):,} events, {PG_DEVICES} "
                        "devices, one at a time", "value": db["wall"],
             "unit": "events/s (wall)", "goal": ""},
            {"measure": "  per core (this process's CPU only)", "value": db["per_core"],
             "unit": "events/s per core", "goal": ""},
            {"measure": "  mean cost of one event", "value": 1e6 / db["wall"], "unit": "µs",
             "goal": ""},
            {"measure": "  median PostgreSQL transition of a 10-byte state (the floor)",
             "value": floor * 1e6, "unit": "µs", "goal": ""},
        ]  # fmt: skip
    return rows


def run(services: LocalServices | None = None) -> list[dict[str, Any]]:
    return asyncio.run(_measure(migrated_database(services)))
