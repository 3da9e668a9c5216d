"""One input event as an entry of its device's timeline, and the checks it must pass.

An entry is a plain list (it is kept in the JSON state as it is):
``[t, rank, source, id, type, offset, kind, app, name, duration]`` with ``t`` in
microseconds since the epoch (UTC), ``offset`` the device's UTC offset in minutes,
``kind`` one of :data:`APP_KINDS` or :data:`SYSTEM_KINDS`, and ``duration`` the raw
``duration_seconds`` of an app event in microseconds (or None). Entries sort by
``(t, rank, source, id)``: at one instant, endings come before beginnings.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from loom.events import RECORDED_TIME
from loom.runtime.event import Event
from loom.runtime.invoke import PoisonEvent

__all__ = [
    "APP",
    "APP_KINDS",
    "SYSTEM",
    "SYSTEM_KINDS",
    "Entry",
    "from_micros",
    "to_entry",
    "to_micros",
]

APP = "os.events.app_lifecycle.raw"
SYSTEM = "os.events.system.raw"

Entry = list[Any]
T, RANK, SOURCE, ID, TYPE, OFFSET, KIND, APP_ID, NAME, DURATION = range(10)

APP_KINDS = frozenset({"launch", "foreground", "background", "terminate", "crash"})
SYSTEM_KINDS = frozenset({"screen_on", "screen_off", "lock", "unlock", "other"})
# What the devices send (seed: screen_on, screen_off, device_lock, device_unlock; macOS
# clients send system_sleep/system_wake) → what it means for the screen. Anything else
# (power, notifications …) only shows how far the device's system events have come.
_SYSTEM = {
    "screen_on": "screen_on",
    "screen_off": "screen_off",
    "device_lock": "lock",
    "device_unlock": "unlock",
    "user_present": "unlock",  # Android's ACTION_USER_PRESENT, sent by some clients as is
    "system_sleep": "screen_off",
    "system_wake": "screen_on",
    "shutdown": "screen_off",
}
_RANK = {"background": 0, "terminate": 0, "crash": 0, "screen_off": 1, "lock": 1, "other": 2,
         "screen_on": 3, "unlock": 3, "launch": 4, "foreground": 5}  # fmt: skip
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Before this a device's clock was not set (a phone that lost power reports 1970).
_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)


def to_micros(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def from_micros(t: int, offset_minutes: int = 0) -> str:
    """RFC 3339 in the device's own UTC offset (so a local day can be told from it)."""
    moment = _EPOCH + timedelta(microseconds=t)
    return moment.astimezone(timezone(timedelta(minutes=offset_minutes))).isoformat()


def parse_time(text: str, what: str) -> datetime:
    """An RFC 3339 date-time; a leap second counts as the next second."""
    value = text.strip().upper()
    leap = len(value) > 19 and value[17:19] == "60"
    if leap:
        value = value[:17] + "59" + value[19:]
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise PoisonEvent(f"{what} {text!r} is not an RFC 3339 date-time") from None
    if moment.tzinfo is None:
        raise PoisonEvent(f"{what} {text!r} has no UTC offset")
    return moment + timedelta(seconds=1) if leap else moment


def _received(event: Event) -> datetime:
    """When Loom received ``event`` (ingest's clock, kept through replays), else now."""
    recorded = event.extensions.get(RECORDED_TIME)
    if isinstance(recorded, datetime) and recorded.tzinfo is not None:
        return recorded
    if isinstance(recorded, str):
        try:
            return parse_time(recorded, RECORDED_TIME)
        except PoisonEvent:
            pass  # not the device's fault: fall back to our own clock
    return datetime.now(UTC)


def to_entry(event: Event, max_future_seconds: float, max_session_seconds: float) -> Entry:
    """``event`` as a timeline entry; PoisonEvent if its time cannot be right.

    A reported ``duration_seconds`` longer than ``max_session_seconds`` is clamped to it."""
    data: dict[str, Any] = event.data
    moment = parse_time(str(data["timestamp"]), "timestamp")
    if moment < _EARLIEST:
        raise PoisonEvent(
            f"timestamp {data['timestamp']} is before 2000: the device's clock was not set"
        )
    received = _received(event)
    if moment - received > timedelta(seconds=max_future_seconds):
        raise PoisonEvent(
            f"timestamp {data['timestamp']} is {(moment - received).total_seconds():.0f} s "
            f"after Loom received the event (at most {max_future_seconds:.0f} s is believable)"
        )
    offset = moment.utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds() // 60)
    if event.type == APP:
        kind = str(data["event_type"])
        app = str(data["app_identifier"])
        name = data.get("app_name") or ""
        seconds = data.get("duration_seconds")
        duration = None
        if isinstance(seconds, int) and seconds > 0:
            duration = int(min(seconds, max_session_seconds) * 1_000_000)
    else:
        kind = _SYSTEM.get(str(data["event_type"]).strip().lower(), "other")
        app, name, duration = "", "", None
    return [to_micros(moment), _RANK[kind], event.source, event.id, event.type, minutes, kind,
            app, str(name), duration]  # fmt: skip
