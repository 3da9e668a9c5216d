"""Building one phone's app and screen events by the minute, and a harness to feed them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from functions.apps.handler import handle
from functions.apps.settings import AppsSettings
from loom.events import RECORDED_TIME
from loom.runtime.event import Event
from loom.runtime.state import MemoryStateStore
from loom.testing import FunctionHarness

APP = "os.events.app_lifecycle.raw"
SYSTEM = "os.events.system.raw"
ENRICHED = "os.events.app_lifecycle.enriched"
DAILY = "os.events.app_usage.daily"
DAY = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
CATEGORY = {"screen_on": "screen", "screen_off": "screen", "device_lock": "lock",
            "device_unlock": "lock", "power_connected": "power"}  # fmt: skip


def at(minutes: float) -> str:
    return (DAY + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def _stamp(minutes: float) -> dict[str, str]:
    """Received by Loom a second after it happened (as ingest stamps it), so that no test
    depends on the clock of the machine it runs on."""
    return {RECORDED_TIME: at(minutes + 1 / 60)}


def app(minutes: float, kind: str, package: str, device: str = "pixel", **data: Any) -> Event:
    payload = {"device_id": device, "timestamp": at(minutes), "app_identifier": package,
               "event_type": kind, **data}  # fmt: skip
    return Event(type=APP, data=payload, id=f"app-{device}-{minutes}-{kind}-{package}",
                 source=f"/devices/{device}", device_id=device,
                 extensions=_stamp(minutes))  # fmt: skip


def system(minutes: float, kind: str, device: str = "pixel") -> Event:
    payload = {"device_id": device, "timestamp": at(minutes), "event_type": kind,
               "event_category": CATEGORY.get(kind, "system")}  # fmt: skip
    return Event(type=SYSTEM, data=payload, id=f"sys-{device}-{minutes}-{kind}",
                 source=f"/devices/{device}", device_id=device,
                 extensions=_stamp(minutes))  # fmt: skip


def received(event: Event, moment: datetime) -> Event:
    """``event`` as ingest stamps it: received by Loom at ``moment``."""
    stamp = moment.isoformat().replace("+00:00", "Z")
    return Event(type=event.type, data=event.data, id=event.id, source=event.source,
                 device_id=event.device_id, extensions={RECORDED_TIME: stamp})  # fmt: skip


def harness(**settings: Any) -> FunctionHarness:
    return FunctionHarness(handle, state=MemoryStateStore(), settings=AppsSettings(**settings))


async def feed(h: FunctionHarness, events: list[Event]) -> list[Event]:
    made: list[Event] = []
    for event in events:
        made.extend(await h.call(event))
    return made


def flush(minutes: float, device: str = "pixel") -> list[Event]:
    """Both inputs move on to ``minutes``: everything before it is final."""
    return [system(minutes, "power_connected", device), app(minutes, "terminate", "flush", device)]


def summary(made: list[Event]) -> list[tuple[str, str, str, float, float, int, str]]:
    """(app, start, end, duration, foreground, launches, ended_by) of each session made."""
    return [(s.data["app_identifier"], s.data["session_start"], s.data["session_end"],
             s.data["duration_seconds"], s.data["foreground_seconds"],
             s.data["launch_count"], s.data["ended_by"])
            for s in sessions(made)]  # fmt: skip


def sessions(made: list[Event]) -> list[Event]:
    return [e for e in made if e.type == ENRICHED]


def days(made: list[Event]) -> list[Event]:
    return [e for e in made if e.type == DAILY]


def iso(minutes: float) -> str:
    return (DAY + timedelta(minutes=minutes)).isoformat()
