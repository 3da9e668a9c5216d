"""One GPS fix as ``georegion`` and ``geocode`` read it, and the checks they share: which fixes
are impossible (dead letters), late (ignored) or a jump no device makes (ignored).

- **Null island**: latitude 0, longitude 0 with no accuracy, or a poor one, is what GPS
  stacks send when they have no fix. It is a property of the event alone, so it is a
  :class:`PoisonEvent` (dead letter, never retried). (0, 0) with a good accuracy is let
  through: a weather buoy really is moored there.
- **Late**: a fix no newer than the last one accepted for the device (a duplicate, or one
  that arrived out of order) changes nothing and makes nothing.
- **Teleport**: a fix that implies more than :data:`MAX_SPEED_MPS` from the last accepted
  one (after taking both accuracies off the distance) is ignored, not dead-lettered: which
  of the two fixes is wrong cannot be told from one event, and a replay from another
  starting point could accept it. If the next fix agrees with the ignored one rather than
  with the last accepted, the last accepted was the glitch: the track moves on from there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from functions.georegion.geometry import distance_m
from loom.runtime.invoke import PoisonEvent

__all__ = [
    "MAX_SPEED_MPS",
    "NULL_ISLAND_TRUSTED_ACCURACY_M",
    "UNKNOWN_ACCURACY_M",
    "Fix",
    "accept_fix",
    "read_fix",
]

MAX_SPEED_MPS = 1000.0  # ~3.5x an airliner's ground speed: faster is a glitch
NULL_ISLAND_TRUSTED_ACCURACY_M = 100.0
UNKNOWN_ACCURACY_M = 50.0  # assumed for a fix without one, where no setting says otherwise

Verdict = Literal["accepted", "late", "teleport"]


@dataclass(frozen=True)
class Fix:
    device_id: str
    t: float  # device time, seconds since the epoch
    timestamp: str  # as the device sent it
    latitude: float
    longitude: float
    accuracy: float | None  # metres; None when unknown (missing, or 0 as Android sends it)

    def accuracy_or(self, default: float) -> float:
        return default if self.accuracy is None else self.accuracy

    def as_state(self) -> dict[str, Any]:
        return {"t": self.t, "lat": self.latitude, "lon": self.longitude, "acc": self.accuracy}


def read_fix(data: dict[str, Any]) -> Fix:
    """The fix in a (schema-valid) ``device.sensor.gps.raw``; PoisonEvent if impossible."""
    try:
        when = datetime.fromisoformat(str(data["timestamp"]).upper())  # RFC 3339 allows t, z
        t = (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
    except (ValueError, OverflowError):
        raise PoisonEvent(f"timestamp {data['timestamp']!r} is not an RFC 3339 time") from None
    lat, lon = float(data["latitude"]), float(data["longitude"])
    raw = data.get("accuracy")
    accuracy = float(raw) if raw else None
    if not all(math.isfinite(v) for v in (lat, lon, accuracy or 0.0)):
        raise PoisonEvent("latitude, longitude and accuracy must be finite numbers")
    if (
        abs(lat) < 1e-7
        and abs(lon) < 1e-7
        and (accuracy is None or accuracy > NULL_ISLAND_TRUSTED_ACCURACY_M)
    ):
        raise PoisonEvent(
            "latitude 0, longitude 0 ('null island') without a good accuracy is what a GPS "
            "sends when it has no fix"
        )
    return Fix(str(data["device_id"]), t, str(data["timestamp"]), lat, lon, accuracy)


def _speed(before: dict[str, Any], fix: Fix, default_accuracy: float) -> float:
    dt = fix.t - float(before["t"])
    gap = distance_m(before["lat"], before["lon"], fix.latitude, fix.longitude)
    slack = (before.get("acc") or default_accuracy) + fix.accuracy_or(default_accuracy)
    return max(0.0, gap - slack) / dt if dt > 0 else math.inf


def accept_fix(state: dict[str, Any], fix: Fix, default_accuracy: float) -> Verdict:
    """Move ``state["fix"]`` (the last accepted fix) on to ``fix``, unless it is late or a
    teleport; a teleport is kept as ``state["suspect"]`` to recognise a glitch behind it."""
    last = state.get("fix")
    if last is not None and fix.t <= float(last["t"]):
        return "late"
    if last is not None and _speed(last, fix, default_accuracy) > MAX_SPEED_MPS:
        suspect = state.get("suspect")
        if (
            suspect is None
            or fix.t <= float(suspect["t"])
            or _speed(suspect, fix, default_accuracy) > MAX_SPEED_MPS
        ):
            state["suspect"] = fix.as_state()
            return "teleport"
    state["fix"] = fix.as_state()
    state.pop("suspect", None)
    return "accepted"
