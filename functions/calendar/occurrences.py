"""The occurrences of a calendar object: a single event once, a recurring one (RRULE,
RDATE) expanded over a window with EXDATEs left out and changed occurrences
(RECURRENCE-ID) in place of the ones they change, by ``recurring-ical-events``."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

import recurring_ical_events
from icalendar import Calendar, Component

from functions.calendar.ical import BadCalendar, Floating, events, rfc3339, to_utc

__all__ = ["Occurrence", "expand", "window"]


@dataclass(frozen=True)
class Occurrence:
    """One occurrence: its VEVENT (with this occurrence's times) and where it falls."""

    event: Component
    uid: str
    series: bool  # part of a recurring event
    recurrence_id: datetime | None  # its place in the series (UTC)
    key: str  # names the occurrence within the object (for its event id)


def expand(
    calendar: Calendar,
    *,
    start: datetime,
    end: datetime,
    limit: int,
    floating: Floating,
) -> tuple[list[Occurrence], bool]:
    """The occurrences of ``calendar``'s events: every event that does not recur, and the
    occurrences of recurring ones that start in [start, end); at most ``limit`` in all.
    Returns them and whether ``limit`` cut them short."""
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
        return made[:limit], len(made) > limit
    try:
        for vevent in recurring_ical_events.of(calendar).after(start):
            uid = str(vevent.get("UID", ""))
            if uid not in recurring:
                continue
            if to_utc(vevent.decoded("DTSTART"), floating.zone) >= end:
                break
            if len(made) >= limit:
                return made, True
            rid = _recurrence_id(vevent, floating) or to_utc(vevent.decoded("DTSTART"),
                                                             floating.zone)  # fmt: skip
            made.append(Occurrence(vevent, uid, True, rid, f"{uid}|{rfc3339(rid)}"))
    except (ValueError, KeyError, TypeError) as exc:
        reason = " ".join(str(exc).split())[:300]
        raise BadCalendar(f"its recurrence cannot be expanded: {reason}") from None
    return made, False


def _recurrence_id(vevent: Component, floating: Floating) -> datetime | None:
    if vevent.get("RECURRENCE-ID") is None:
        return None
    return to_utc(vevent.decoded("RECURRENCE-ID"), floating.zone)


def window(anchor: datetime, past_days: int, future_days: int) -> tuple[datetime, datetime]:
    """[anchor - past_days, anchor + future_days)."""
    return anchor - timedelta(days=past_days), anchor + timedelta(days=future_days)
