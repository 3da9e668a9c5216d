"""One power reading, read from ``device.state.power.raw`` data and checked for what the
schema cannot say (a clock that is not set, a time in the future, a level that is NaN)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from loom.runtime.invoke import PoisonEvent

__all__ = ["EARLIEST", "Reading", "power_source", "read"]

# No battery reading is from before this: a device whose clock says so has not set it.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)

# What devices call their power source (Android's BatteryManager, macOS pmset, iOS, Linux
# sysfs), by name with only letters and digits kept, lower-cased.
_SOURCES = {
    **dict.fromkeys(("ac", "acpower", "mains", "wall", "adapter", "charger", "dock"), "ac"),
    **dict.fromkeys(("usb", "usbc", "usbpd", "pd"), "usb"),
    **dict.fromkeys(("wireless", "qi", "inductive"), "wireless"),
    **dict.fromkeys(
        ("battery", "batterypower", "internalbattery", "none", "unplugged", "discharging"),
        "battery",
    ),
}
_NOT_ALNUM = re.compile(r"[^a-z0-9]")


def power_source(named: object, charging: bool) -> str:
    """The enriched schema's name for a device's power source: battery, ac, usb, wireless or
    unknown. Unnamed: battery while not charging, unknown while charging."""
    if not isinstance(named, str) or not named.strip():
        return "unknown" if charging else "battery"
    return _SOURCES.get(_NOT_ALNUM.sub("", named.lower()), "unknown")


@dataclass(frozen=True, slots=True)
class Reading:
    device_id: str
    timestamp: str  # as the device wrote it (RFC 3339 with its offset)
    t: float  # seconds since the epoch
    day: str  # the device's local calendar day (the offset it wrote), YYYY-MM-DD
    offset_seconds: int  # that offset
    level: float  # as the device sent it (an int stays an int)
    charging: bool
    source: str  # battery, ac, usb, wireless or unknown


def read(data: dict[str, object], *, now: datetime, future_tolerance_seconds: float) -> Reading:
    """``data`` (valid ``device.state.power.raw``) as a Reading; PoisonEvent if impossible."""
    level = data["battery_level"]
    if not isinstance(level, int | float) or not math.isfinite(level):
        raise PoisonEvent(f"battery_level {level!r} is not a number")
    timestamp = str(data["timestamp"])
    try:
        when = datetime.fromisoformat(timestamp.upper())
        offset = when.utcoffset()
        t = when.timestamp()
    except (ValueError, OverflowError) as exc:
        raise PoisonEvent(f"timestamp {timestamp!r} cannot be read: {exc}") from None
    if offset is None:
        raise PoisonEvent(f"timestamp {timestamp!r} has no UTC offset")
    if when < EARLIEST:
        raise PoisonEvent(f"timestamp {timestamp!r} is before 2000: the device's clock is not set")
    ahead = t - now.timestamp()
    if ahead > future_tolerance_seconds:
        raise PoisonEvent(
            f"timestamp {timestamp!r} is {ahead / 3600:.1f} h in the future "
            f"(more than {future_tolerance_seconds / 3600:g} h ahead is impossible)"
        )
    charging = bool(data["is_charging"])
    return Reading(
        device_id=str(data["device_id"]),
        timestamp=timestamp,
        t=t,
        day=when.date().isoformat(),
        offset_seconds=int(offset.total_seconds()),
        level=level,
        charging=charging,
        source=power_source(data.get("power_source"), charging),
    )
