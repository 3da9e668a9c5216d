"""``calendar``: iCalendar objects in, one ``external.calendar.enriched`` per occurrence out.

Each ``external.calendar.raw`` (one CalDAV object, as the ``calendar`` fetcher makes it)
is read with ``icalendar``: times become UTC with the name of the zone they were
written in (TZID, the object's own VTIMEZONE, UTC; floating times in the calendar's
X-WR-TIMEZONE or ``LOOM_CALENDAR_FLOATING_TIMEZONE``; all-day events midnight UTC).
A recurring event is expanded from ``LOOM_CALENDAR_EXPAND_PAST_DAYS`` before to
``LOOM_CALENDAR_EXPAND_FUTURE_DAYS`` after the time the object is sent as of (its
``fetched_at``; the event's time where it has none), and the fetcher sends a recurring
object again every ``LOOM_CALENDAR_REFRESH_DAYS``, so the occurrences move forward with
it. The expansion runs in a thread, its work bounded (``LOOM_CALENDAR_MAX_RULE_STEPS``,
``LOOM_CALENDAR_MAX_OCCURRENCES``); a rule it cannot reach the window with, or an object
that cannot be read, is a dead letter with the reason.

An occurrence is the same event each time it is made from the same version of its
object (same ETag), whichever sending that was, so the store keeps it once:

- its id follows from the account, calendar, ETag, UID and RECURRENCE-ID (not from the
  raw event's id, which changes with every refresh);
- its time is when it became known: when its version was written, or
  ``LOOM_CALENDAR_EXPAND_FUTURE_DAYS`` before it starts if that is later, never after
  the raw event's time. Every sending that makes it has a time at or after that, and it
  is kept for the catalog's retention less that many days after it starts; an event
  long past when first fetched is past retention (history older than the store keeps).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from functions.calendar import ical
from functions.calendar.occurrences import Expansion, Occurrence, expand, window
from functions.calendar.settings import ENRICHED, CalendarSettings, calendar_settings
from loom.runtime.context import Context
from loom.runtime.event import Event
from loom.runtime.invoke import PoisonEvent
from loom.runtime.registry import function

__all__ = ["ENRICHED", "RAW", "handle"]

RAW = "external.calendar.raw"
_MAX_MINUTES = 527_040  # a leap year: the schema's bound
_OCCURRENCE = uuid.UUID("0b7f4c1e-2d6a-5e83-9c41-7a5d3e9f1b26")  # namespace of occurrence ids


@function(consumes=[RAW], produces=[ENRICHED])
async def handle(event: Event, ctx: Context) -> list[Event]:
    """Occurrences of calendar events in UTC with their zone, attendees and recurrence."""
    config = calendar_settings(ctx.settings)
    data: dict[str, Any] = event.data
    anchor = _anchor(data, event.time)
    try:
        found = await asyncio.to_thread(_occurrences, data, anchor, config)
    except ical.BadCalendar as exc:
        raise PoisonEvent(f"calendar object {data['event_uid']!r}: {exc}") from None
    made = [
        replace(event.derive(ENRICHED, item, source=ctx.source), id=id_, time=time)
        for id_, time, item in found.items
    ]
    cut = found.expansion.cut
    if found.expansion.limited or cut is not None:
        ctx.log.warning("calendar.occurrences_capped", event_uid=data["event_uid"],
                        limit=config.calendar_max_occurrences,
                        rule_steps_ran_out=ical.rfc3339(cut) if cut else None)  # fmt: skip
    return made


@dataclass(frozen=True)
class _Found:
    expansion: Expansion
    items: list[tuple[str, datetime, dict[str, Any]]]  # id, time and data of each occurrence


def _anchor(data: dict[str, Any], time: datetime) -> datetime:
    """The time the object is sent as of: ``fetched_at``, else the event's time."""
    moment = time
    if isinstance(data.get("fetched_at"), str):
        # the schema holds it to a date-time: only a replay of a bad one is not read
        with contextlib.suppress(ValueError):
            moment = datetime.fromisoformat(data["fetched_at"])
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _occurrences(data: dict[str, Any], anchor: datetime, config: CalendarSettings) -> _Found:
    """Read, expand and enrich (blocks: run in a thread)."""
    calendar = ical.parse(data["ical"])
    floating = ical.floating_zone(calendar, config.calendar_floating_timezone)
    first, last = window(anchor, config.calendar_expand_past_days,
                         config.calendar_expand_future_days)  # fmt: skip
    found = expand(calendar, start=first, end=last, floating=floating,
                   limit=config.calendar_max_occurrences,
                   budget=config.calendar_max_rule_steps,
                   timeout=config.calendar_expand_timeout_seconds)  # fmt: skip
    written = ical.version_time(calendar)
    ahead = timedelta(days=config.calendar_expand_future_days)
    version = data.get("etag") or "sha256:" + hashlib.sha256(data["ical"].encode()).hexdigest()
    items = []
    for occurrence in found.occurrences:
        fields = _enriched(occurrence, data, floating)
        time = min(_known(datetime.fromisoformat(fields["start"]), written, ahead), anchor)
        item = {"timestamp": ical.rfc3339(time), **fields}
        name = f"{data['account']}|{data['calendar_id']}|{version}|{occurrence.key}"
        items.append((str(uuid.uuid5(_OCCURRENCE, name)), time, item))
    return _Found(found, items)


def _known(start: datetime, written: datetime | None, ahead: timedelta) -> datetime:
    """When an occurrence became known: ``ahead`` before it starts, or when its version
    was written if that is later."""
    try:
        soonest = start - ahead
    except OverflowError:  # an event in the first months of year 1
        soonest = start
    return soonest if written is None else max(written, soonest)


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
