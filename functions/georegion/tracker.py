"""Inside or outside each region, decided with hysteresis and a dwell time. Pure: the state
is a JSON dict (kept per device by the function's state store), a fix moves it on.

Per region, with ``s`` the fix's signed distance to the boundary (positive inside), ``a``
its accuracy and ``m`` the margin:

- the fix says **inside** when its accuracy circle lies inside the region (``s >= a``);
- it says **outside** when its accuracy circle lies wholly beyond the boundary grown by the
  margin (``-s > a + m``);
- between the two it says nothing, and neither starts, confirms nor cancels a change.

A change (outside → inside, or back) starts *pending* at the first fix that says so and is
emitted once a fix still says so ``dwell`` seconds later; a fix that says the opposite
cancels it. The event carries the first fix's time and place: when the device arrived or
left, not when Loom became sure. A region never seen counts as outside (no event).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from functions.georegion.fixes import Fix
from functions.georegion.geometry import Polygon
from functions.georegion.regions import Region

__all__ = ["Change", "Rules", "track"]


@dataclass(frozen=True)
class Rules:
    dwell_seconds: float
    margin_m: float
    default_accuracy_m: float
    dwell_report_seconds: float


@dataclass(frozen=True)
class Change:
    """One event to emit: a region entered, left, or stayed in."""

    region: Region
    transition: str  # enter, exit, dwell
    timestamp: str
    latitude: float
    longitude: float
    distance_m: float
    dwell_seconds: float | None = None


def _evidence(region: Region, fix: Fix, rules: Rules) -> tuple[bool | None, float]:
    """(True inside, False outside, None unsure; distance to the centre)."""
    a = fix.accuracy_or(rules.default_accuracy_m)
    if isinstance(region.shape, Polygon):
        s, centre = region.shape.measure(fix.latitude, fix.longitude, near_m=a + rules.margin_m)
    else:
        s, centre = region.shape.measure(fix.latitude, fix.longitude)
    if s >= a:
        return True, centre
    if -s > a + rules.margin_m:
        return False, centre
    return None, centre


def track(
    regions: dict[str, Any], candidates: list[Region], fix: Fix, rules: Rules
) -> tuple[dict[str, Any], list[Change]]:
    """The region states after ``fix`` (keyed by region id) and the events it makes.

    ``regions`` is the state before; regions no longer saved are forgotten (no exit)."""
    after: dict[str, Any] = {}
    changes: list[Change] = []
    for region in sorted(candidates, key=lambda r: r.region_id):
        state = dict(regions.get(region.region_id) or {"in": False})
        inside, centre = _evidence(region, fix, rules)
        changed = False
        if inside is not None and inside == state["in"]:
            state.pop("pending", None)
        elif inside is not None:
            pending = state.get("pending") or {"t": fix.t, "ts": fix.timestamp,
                                               "lat": fix.latitude, "lon": fix.longitude,
                                               "d": centre}  # fmt: skip
            if fix.t - pending["t"] >= rules.dwell_seconds:
                changes.append(_changed(region, state, pending, inside))
                changed = True
                state = {"in": inside}
                if inside:
                    state |= {"since": pending["t"], "reported": pending["t"]}
            else:
                state["pending"] = pending
        report = None if changed else _dwell_report(region, state, fix, centre, rules)
        if report is not None:
            changes.append(report)
            state["reported"] = fix.t
        if state["in"] or "pending" in state:  # outside and settled: nothing to remember
            after[region.region_id] = state
    return after, changes


def _changed(
    region: Region, state: dict[str, Any], pending: dict[str, Any], inside: bool
) -> Change:
    since = state.get("since")
    stayed = max(0.0, pending["t"] - since) if not inside and since is not None else None
    return Change(region, "enter" if inside else "exit", pending["ts"], pending["lat"],
                  pending["lon"], pending["d"], stayed)  # fmt: skip


def _dwell_report(
    region: Region, state: dict[str, Any], fix: Fix, centre: float, rules: Rules
) -> Change | None:
    every = rules.dwell_report_seconds
    if not every or not state["in"] or "pending" in state or state.get("since") is None:
        return None
    if fix.t - float(state.get("reported", state["since"])) < every:
        return None
    return Change(region, "dwell", fix.timestamp, fix.latitude, fix.longitude, centre,
                  max(0.0, fix.t - float(state["since"])))  # fmt: skip
