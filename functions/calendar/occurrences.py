"""The occurrences of a calendar object: a single event once, a recurring one (RRULE,
RDATE) expanded over a window with EXDATEs left out and changed occurrences
(RECURRENCE-ID) in place of the ones they change, by ``recurring-ical-events``.

The expansion asks for the window alone (``between``), on a copy of the object whose
rules are bounded first (:mod:`functions.calendar.rules`), and keeps the earliest
``limit`` occurrences: its work grows with the window and the budget, not with how long
ago a series began. It blocks (pure Python): callers run it in a thread.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import recurring_ical_events  # type: ignore[import-untyped]
from icalendar import Calendar, Component

from functions.calendar.ical import BadCalendar, Floating, events, rfc3339, to_utc
from functions.calendar.rules import bound, per_day, time_limit

__all__ = ["Expansion", "Occurrence", "expand", "window"]

_SLACK = timedelta(days=1)  # asked beyond a span with all-day events: midnight of which zone
_SHORTEST = timedelta(minutes=1)  # the first span asked for, at least


@dataclass(frozen=True)
class Occurrence:
    """One occurrence: its VEVENT (with this occurrence's times) and where it falls."""

    event: Component
    uid: str
    series: bool  # part of a recurring event
    recurrence_id: datetime | None  # its place in the series (UTC)
    key: str  # names the occurrence within the object (for its event id)


@dataclass(frozen=True)
class Expansion:
    """The occurrences, and whether (and why) there would have been more."""

    occurrences: list[Occurrence]
    limited: bool = False  # the occurrence limit left some out
    cut: datetime | None = None  # the rule budget ended a series here, before the window's end


def expand(
    calendar: Calendar,
    *,
    start: datetime,
    end: datetime,
    limit: int,
    floating: Floating,
    budget: int,
    timeout: float,
) -> Expansion:
    """The occurrences of ``calendar``'s events: every event that does not recur, and the
    earliest occurrences of recurring ones that start in [start, end); at most ``limit``
    in all. A rule that cannot be expanded within ``budget`` steps or ``timeout`` seconds
    is :class:`BadCalendar`."""
    groups: dict[str, list[Component]] = defaultdict(list)
    for vevent in events(calendar):
        groups[str(vevent.get("UID", ""))].append(vevent)
    recurring = {
        uid
        for uid, found in groups.items()
        if any(v.get("RRULE") is not None or v.get("RDATE") is not None for v in found)
    }
    made: list[Occurrence] = []
    for uid, found in groups.items():
        if uid in recurring:
            continue
        for n, vevent in enumerate(found):  # one event, or changed occurrences without a series
            rid = _recurrence_id(vevent, floating)
            key = f"{uid}|{rfc3339(rid) if rid else ''}|{n}"
            made.append(Occurrence(vevent, uid, rid is not None, rid, key))
    if not recurring:
        return Expansion(made[:limit], limited=len(made) > limit)
    room = max(limit - len(made), 0)
    try:
        with time_limit(timeout, "expanding its recurrence"):
            bounded, cut = bound(calendar, start=start, end=end, floating=floating,
                                 budget=budget)  # fmt: skip
            series = [s for s in recurring_ical_events.of(bounded).series
                      if _wanted(str(s.uid), recurring, groups)]  # fmt: skip
            dense = per_day(bounded)  # the first span holds about room + 1 of a dense rule
            span = timedelta(days=(room + 1) / dense) if dense else end - start
            slack = _SLACK if any(_all_day(v) for v in events(bounded)) else timedelta(0)
            earliest = _earliest(series, start, end, floating, room + 1, max(span, _SHORTEST),
                                 slack)  # fmt: skip
            for _, _, occurrence in earliest[:room]:
                vevent = occurrence.as_component(False)
                uid = str(vevent.get("UID", ""))
                rid = _recurrence_id(vevent, floating) or to_utc(vevent.decoded("DTSTART"),
                                                                 floating.zone)  # fmt: skip
                made.append(Occurrence(vevent, uid, True, rid, f"{uid}|{rfc3339(rid)}"))
    except BadCalendar:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        reason = " ".join(str(exc).split())[:300]
        raise BadCalendar(f"its recurrence cannot be expanded: {reason}") from None
    return Expansion(made, limited=len(earliest) > room, cut=cut)


def _wanted(uid: str, recurring: set[str], groups: dict[str, list[Component]]) -> bool:
    """Whether the library's series ``uid`` is one of ``recurring`` (it names one without
    a UID by a Python id: that is the "" of ``recurring``)."""
    return uid in recurring or ("" in recurring and uid not in groups)


def _earliest(
    series: list[Any],
    start: datetime,
    end: datetime,
    floating: Floating,
    want: int,
    span: timedelta,
    slack: timedelta,
) -> list[tuple[datetime, int, Any]]:
    """The ``want`` earliest occurrences of ``series`` that start in [start, end), as (start
    in UTC, a tie-breaker, occurrence). Asked for in spans that double from ``span``, so
    a dense series stops soon after ``want`` (the rules' instances are cached between asks).
    Spans are asked for in the floating zone: the library reads them as wall times for
    floating events, and as midnight UTC for all-day ones (give those ``slack``)."""
    found: list[tuple[datetime, int, Any]] = []
    low = start
    while low < end and len(found) < want:
        high = min(low + span, end)
        for one in series:
            asked = (
                (low - slack).astimezone(floating.zone),
                (high + slack).astimezone(floating.zone),
            )
            for occurrence in one.between(*asked):
                moment = to_utc(occurrence.start, floating.zone)
                if low <= moment < high:
                    found.append((moment, len(found), occurrence))
        low, span = high, span * 2
    return heapq.nsmallest(want, found)


def _all_day(vevent: Component) -> bool:
    return not isinstance(vevent.decoded("DTSTART"), datetime)


def _recurrence_id(vevent: Component, floating: Floating) -> datetime | None:
    if vevent.get("RECURRENCE-ID") is None:
        return None
    return to_utc(vevent.decoded("RECURRENCE-ID"), floating.zone)


def window(anchor: datetime, past_days: int, future_days: int) -> tuple[datetime, datetime]:
    """[anchor - past_days, anchor + future_days)."""
    return anchor - timedelta(days=past_days), anchor + timedelta(days=future_days)
