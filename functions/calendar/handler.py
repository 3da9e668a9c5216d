"""``calendar``: iCalendar objects in, one ``external.calendar.enriched`` per occurrence out.

Each ``external.calendar.raw`` (one CalDAV object, as the ``calendar`` fetcher makes it)
is read with ``icalendar``: times become UTC with the name of the zone they were
written in (TZID, the object's own VTIMEZONE, UTC; floating times in the calendar's
X-WR-TIMEZONE or ``LOOM_CALENDAR_FLOATING_TIMEZONE``; all-day events midnight UTC).
A recurring event is expanded from ``LOOM_CALENDAR_EXPAND_PAST_DAYS`` before to
``LOOM_CALENDAR_EXPAND_FUTURE_DAYS`` after the raw event's time (when that version
was written), so handling it again, or replaying it, makes the same occurrences under
the same ids. An object that cannot be read is a dead letter with the reason.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from functions.calendar import ical
from functions.calendar.occurrences import Occurrence, expand, window
from functions.calendar.settings import calendar_settings
from loom.runtime.context import Context
from loom.runtime.event import Event
from loom.runtime.invoke import PoisonEvent
from loom.runtime.registry import function

__all__ = ["ENRICHED", "RAW", "handle"]

RAW = "external.calendar.raw"
ENRICHED = "external.calendar.enriched"
_MAX_MINUTES = 527_040  # a leap year: the schema's bound


@function(consumes=[RAW], produces=[ENRICHED])
async def handle(event: Event, ctx: Context) -> list[Event]:
    """Occurrences of calendar events in UTC with their zone, attendees and recurrence."""
    config = calendar_settings(ctx.settings)
    data: dict[str, Any] = event.data
    try:
        calendar = ical.parse(data["ical"])
        floating = ical.floating_zone(calendar, config.calendar_floating_timezone)
        first, last = window(event.time, config.calendar_expand_past_days,
                             config.calendar_expand_future_days)  # fmt: skip
        found, capped = expand(calendar, start=first, end=last, floating=floating,
                               limit=config.calendar_max_occurrences)  # fmt: skip
        made = [
            event.derive(
                ENRICHED,
                _enriched(occurrence, data, floating),
                source=ctx.source,
                index=_index(occurrence.key),
            )
            for occurrence in found
        ]
    except ical.BadCalendar as exc:
        raise PoisonEvent(f"calendar object {data['event_uid']!r}: {exc}") from None
    if capped:
        ctx.log.warning("calendar.occurrences_capped", event_uid=data["event_uid"],
                        limit=config.calendar_max_occurrences)  # fmt: skip
    return made


def _index(key: str) -> int:
    """A stable number for an occurrence's key (its UID and RECURRENCE-ID)."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")


def _enriched(
    occurrence: Occurrence, raw: dict[str, Any], floating: ical.Floating
) -> dict[str, Any]:
    vevent = occurrence.event
    try:
        when = ical.span(vevent, floating)
    except (ValueError, KeyError, TypeError) as exc:
        raise ical.BadCalendar(f"event {occurrence.uid!r} has unreadable times: {exc}") from None
    people, count = ical.attendees(vevent)
    data: dict[str, Any] = {
        "timestamp": raw["timestamp"],
        "account": raw["account"],
        "calendar_id": raw["calendar_id"],
        "event_uid": (occurrence.uid or raw["event_uid"])[:1024],
        "summary": ical.text(vevent, "SUMMARY") or "",
        "start": ical.rfc3339(when.start),
        "end": ical.rfc3339(when.end),
        "all_day": when.all_day,
        "duration_minutes": round(min(when.minutes, _MAX_MINUTES), 3),
        "attendee_count": count,
        "is_recurring": occurrence.series,
        "status": ical.status(vevent),
    }
    if when.timezone:
        data["timezone"] = when.timezone
    if occurrence.recurrence_id is not None:
        data["recurrence_id"] = ical.rfc3339(occurrence.recurrence_id)
    for field, name in (("description", "DESCRIPTION"), ("location", "LOCATION")):
        if value := ical.text(vevent, name):
            data[field] = value
    if organizer := ical.organizer(vevent):
        data["organizer"] = organizer
    if people:
        data["attendees"] = people
    if category := _category(vevent):
        data["category"] = category
    return data


def _category(vevent: Any) -> str | None:
    """The event's first CATEGORIES value as a lower-case word (``Focus Time``: ``focus-time``)."""
    for name in getattr(vevent, "categories", None) or ():
        word = re.sub(r"[^a-z0-9_-]+", "-", str(name).strip().lower()).strip("-_")
        word = re.sub(r"^[^a-z]+", "", word)[:64]
        if word:
            return word
    return None
