"""What one device's readings add up to: a smoothed charge rate, charging sessions and
daily summaries. Pure: ``advance(state, reading)`` returns the next state and what to emit.

The state is plain JSON (it is kept in ``loom_function_state``) and never changed in place
(the store keeps the state before the last event beside it):

    last_t, last_level, charging   the newest reading seen (its time in epoch seconds)
    window   [[t, level], …]       recent readings of the current phase (charging or not),
                                   at most about ``_POINTS`` + 2, oldest first
    session  {start, start_level, end, end_t, end_level, energy, unplugged_t} | None
                                   the charging session under way; ``unplugged_t`` is set
                                   while it may still be a short unplug
    day      {date, offset, start_level, end_level, min, max, energy, count,
              battery_s, charging_s}                the device's local day so far
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from functions.power.reading import Reading
from functions.power.settings import PowerSettings

__all__ = ["Outcome", "advance", "charge_rate", "estimates"]

State = dict[str, Any]
# Points kept per rate window: readings closer together than window / _POINTS replace the
# newest point instead of adding one, so a device reporting every second keeps a small state.
_POINTS = 32
_MAX_RATE = 1000.0  # the enriched schema's bound, percent per hour
_MAX_ENERGY = 10_000.0  # the patterns schema's bound, percentage points


@dataclass(frozen=True)
class Outcome:
    state: State
    rate: float | None  # percent per hour; None: unknown
    patterns: list[dict[str, Any]] = field(default_factory=list)
    late: bool = False  # older than (or a repeat of) the newest reading: state unchanged


def advance(state: State, reading: Reading, config: PowerSettings) -> Outcome:
    """The state after ``reading`` and the patterns it completes.

    A reading older than the newest one seen, or the same reading again, changes nothing
    and completes nothing: its rate comes from the readings kept before it."""
    if not state:
        return _first(reading)
    last_t = state["last_t"]
    repeat = (reading.t == last_t and reading.level == state["last_level"]
              and reading.charging == state["charging"])  # fmt: skip
    if repeat:
        return Outcome(state, charge_rate(state["window"], config), late=True)
    if reading.t < last_t:
        points = [p for p in state["window"] if p[0] < reading.t]
        if state["charging"] != reading.charging:
            points = []
        points = _trim([*points, [reading.t, reading.level]], reading.t, config)
        return Outcome(state, charge_rate(points, config), late=True)

    window = _next_window(state, reading, config)
    session, closed, charged, opened = _next_session(state["session"], reading, config)
    day, summary = _next_day(state, reading, charged, opened, config)
    patterns = []
    if closed is not None:
        patterns.append(_session_pattern(reading.device_id, closed))
    if summary is not None:
        patterns.append(summary)
    new = {"last_t": reading.t, "last_level": reading.level, "charging": reading.charging,
           "window": window, "session": session, "day": day}  # fmt: skip
    return Outcome(new, charge_rate(window, config), patterns)


def charge_rate(points: list[list[float]], config: PowerSettings) -> float | None:
    """Least-squares slope of ``points`` in percent per hour; None if they span too little
    time to tell (fewer than two, all at one instant, or less than the minimum span)."""
    if len(points) < 2 or points[-1][0] - points[0][0] < config.power_rate_min_span_seconds:
        return None
    t0 = points[0][0]  # relative times: epoch seconds squared lose precision
    n = len(points)
    sum_t = sum_l = sum_tt = sum_tl = 0.0
    for t, level in points:
        t -= t0
        sum_t += t
        sum_l += level
        sum_tt += t * t
        sum_tl += t * level
    spread = n * sum_tt - sum_t * sum_t
    if spread <= 0:
        return None
    slope = (n * sum_tl - sum_t * sum_l) / spread
    return max(-_MAX_RATE, min(_MAX_RATE, slope * 3600.0))


def estimates(
    level: float, charging: bool, rate: float | None, config: PowerSettings
) -> tuple[float | None, float | None]:
    """Minutes to empty (while draining) and to full (while charging) at ``rate``."""
    least = config.power_min_rate_pct_per_hour
    if charging:
        if level >= 100:
            return None, 0.0
        if rate is not None and rate > 0 and rate >= least:
            return None, round((100.0 - level) / rate * 60.0, 1)
        return None, None
    if rate is not None and rate < 0 and -rate >= least:
        return round(level / -rate * 60.0, 1), None
    return None, None


def _first(reading: Reading) -> Outcome:
    session = _open(reading) if reading.charging else None
    state = {"last_t": reading.t, "last_level": reading.level, "charging": reading.charging,
             "window": [[reading.t, reading.level]], "session": session,
             "day": _new_day(reading, 0.0, session is not None, 0.0, False)}  # fmt: skip
    return Outcome(state, None)


def _trim(points: list[list[float]], now: float, config: PowerSettings) -> list[list[float]]:
    """Drop points older than the window, keeping one at or before its start (so the rate
    spans the whole window, or bridges a gap) unless it is older than the longest gap."""
    cutoff = now - config.power_rate_window_seconds
    oldest = now - config.power_max_gap_seconds
    start = 0
    while start < len(points) - 1 and (points[start][0] < oldest or points[start + 1][0] <= cutoff):
        start += 1
    return points[start:] if start else points


def _next_window(state: State, reading: Reading, config: PowerSettings) -> list[list[float]]:
    point = [reading.t, reading.level]
    if state["charging"] != reading.charging:
        return [point]  # a new phase: the slope across plugging in or out means nothing
    points: list[list[float]] = state["window"]
    spacing = config.power_rate_window_seconds / _POINTS
    if len(points) >= 2 and reading.t - points[-2][0] < spacing:
        points = [*points[:-1], point]
    else:
        points = [*points, point]
    return _trim(points, reading.t, config)


def _open(reading: Reading) -> dict[str, Any]:
    return {"start": reading.timestamp, "start_level": reading.level, "end": reading.timestamp,
            "end_t": reading.t, "end_level": reading.level, "energy": 0.0,
            "unplugged_t": None}  # fmt: skip


def _next_session(
    session: dict[str, Any] | None, reading: Reading, config: PowerSettings
) -> tuple[dict[str, Any] | None, dict[str, Any] | None, float, bool]:
    """The session after ``reading``, the one it closed, the percentage points it charged
    and whether it opened a session. A session ends at its last charging reading, once
    the device has been unplugged for the merge time (or is plugged in again after it)."""
    merge = config.power_session_merge_seconds
    closed = None
    if session is not None and session["unplugged_t"] is not None:
        if reading.t - session["unplugged_t"] >= merge:
            closed, session = session, None
        elif reading.charging:
            session = {**session, "unplugged_t": None}  # a short unplug: the session goes on
    elif session is not None and not reading.charging:
        if merge <= 0:
            closed, session = session, None
        else:
            session = {**session, "unplugged_t": reading.t}
    if not reading.charging:
        return session, closed, 0.0, False
    if session is None:
        return _open(reading), closed, 0.0, True
    charged = max(0.0, reading.level - session["end_level"])
    session = {**session, "end": reading.timestamp, "end_t": reading.t,
               "end_level": reading.level, "energy": session["energy"] + charged}  # fmt: skip
    return session, closed, charged, False


def _session_pattern(device_id: str, session: dict[str, Any]) -> dict[str, Any]:
    return {"device_id": device_id, "timestamp": session["end"], "pattern": "charging_session",
            "session_start": session["start"], "session_end": session["end"],
            "start_level": session["start_level"], "end_level": session["end_level"],
            "energy_pct": round(min(session["energy"], _MAX_ENERGY), 2)}  # fmt: skip


def _new_day(
    reading: Reading, charged: float, opened: bool, seconds: float, charging: bool
) -> dict[str, Any]:
    return {"date": reading.day, "offset": reading.offset_seconds,
            "start_level": reading.level, "end_level": reading.level,
            "min": reading.level, "max": reading.level, "energy": charged, "count": int(opened),
            "battery_s": 0.0 if charging else seconds,
            "charging_s": seconds if charging else 0.0}  # fmt: skip


def _next_day(
    state: State, reading: Reading, charged: float, opened: bool, config: PowerSettings
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The local day after ``reading`` and, when it starts a later day, the summary of the
    day before. The time since the previous reading counts for the phase it was in (on
    battery or charging), split at midnight, unless it is longer than the longest gap."""
    day: dict[str, Any] = state["day"]
    was_charging: bool = state["charging"]
    elapsed = reading.t - state["last_t"]
    if elapsed > config.power_max_gap_seconds:
        elapsed = 0.0
    if reading.day > day["date"]:
        zone = timezone(timedelta(seconds=reading.offset_seconds))
        midnight = datetime.fromisoformat(reading.day).replace(tzinfo=zone).timestamp()
        before = min(max(0.0, midnight - state["last_t"]), elapsed)
        summary = _summary(reading.device_id, _add_time(day, was_charging, before))
        return _new_day(reading, charged, opened, elapsed - before, was_charging), summary
    day = _add_time(day, was_charging, elapsed)
    day.update(end_level=reading.level, min=min(day["min"], reading.level),
               max=max(day["max"], reading.level), energy=day["energy"] + charged,
               count=day["count"] + int(opened))  # fmt: skip
    return day, None


def _add_time(day: dict[str, Any], charging: bool, seconds: float) -> dict[str, Any]:
    key = "charging_s" if charging else "battery_s"
    return {**day, key: day[key] + seconds}


def _summary(device_id: str, day: dict[str, Any]) -> dict[str, Any]:
    offset = int(day["offset"])
    zone = "Z" if offset == 0 else (
        f"{'+' if offset > 0 else '-'}{abs(offset) // 3600:02d}:{abs(offset) % 3600 // 60:02d}"
    )  # fmt: skip
    end = f"{day['date']}T23:59:59{zone}"
    return {"device_id": device_id, "timestamp": end, "pattern": "daily_summary",
            "session_start": f"{day['date']}T00:00:00{zone}", "session_end": end,
            "start_level": day["start_level"], "end_level": day["end_level"],
            "energy_pct": round(min(day["energy"], _MAX_ENERGY), 2), "day": day["date"],
            "charge_count": day["count"], "min_level": day["min"], "max_level": day["max"],
            "minutes_on_battery": round(day["battery_s"] / 60.0, 1),
            "minutes_charging": round(day["charging_s"] / 60.0, 1)}  # fmt: skip
