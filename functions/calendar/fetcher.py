"""The ``calendar`` fetcher: CalDAV accounts in, each new or changed calendar object out.

For every calendar object (one CalDAV resource: an event, or a recurring series with
its changed occurrences) that is new or changed since the last run, it makes:

- one ``external.calendar.raw``: the object's iCalendar text as the server has it, with
  its ETag; the ``calendar`` function turns it into one enriched event per occurrence;
- one ``external.calendar.events.raw`` per VEVENT in it: the event as written (title,
  times in UTC and the zone, attendees, organizer, status, the recurrence rule).

Ids follow from the object's href and ETag, so the same version of an object is the
same event and an edited one a new event. The event time is when that version was
written (LAST-MODIFIED, else DTSTAMP), never later than the run. Deleted objects make
no event (no calendar type says "gone"); they leave the cursor. Objects without a
VEVENT (tasks, journals) are skipped.

The cursor keeps per calendar the sync token (RFC 6578) and the ETag of every object
seen, saved after each batch of ``LOOM_CALENDAR_BATCH_SIZE`` objects, so a run cut
short resumes without sending the objects it had sent again.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
from collections.abc import AsyncIterator
from typing import Any

from caldav.collection import Calendar

from functions.calendar import dav, ical
from functions.calendar.settings import CalDavAccount, CalendarSettings
from loom.runtime.event import Event
from loom.runtime.fetcher import Batch, FetchContext, fetcher

__all__ = ["EVENTS", "RAW", "fetch"]

RAW = "external.calendar.raw"
EVENTS = "external.calendar.events.raw"


@fetcher(produces=[RAW, EVENTS], settings=CalendarSettings, schedule="*/15 * * * *")
async def fetch(
    account: CalDavAccount, cursor: dict[str, Any], ctx: FetchContext
) -> AsyncIterator[Batch]:
    """New and changed events of CalDAV calendars, as iCalendar objects and per event."""
    config: CalendarSettings = ctx.settings
    state: dict[str, Any] = copy.deepcopy(cursor.get("calendars") or {})
    client = await asyncio.to_thread(dav.connect, account, config.calendar_timeout_seconds)
    try:
        found = await asyncio.to_thread(dav.calendars, client, account)
        for gone in set(state) - {str(c.url) for c in found}:
            del state[gone]  # a calendar no longer read: forget it
        for calendar in found:
            async for batch in _calendar(calendar, state, config, ctx):
                yield batch
    finally:
        client.close()


async def _calendar(
    calendar: Calendar, state: dict[str, Any], config: CalendarSettings, ctx: FetchContext
) -> AsyncIterator[Batch]:
    url = str(calendar.url)
    known: dict[str, Any] = state.setdefault(url, {"token": None, "etags": {}})
    etags: dict[str, str] = known.setdefault("etags", {})
    listing = await asyncio.to_thread(
        dav.changes, calendar, known.get("token"), config.calendar_sync_tokens
    )
    gone = set(listing.deleted)
    if listing.full:
        gone |= set(etags) - {m.name for m in listing.members}
    for name in gone & set(etags):
        del etags[name]
    changed = [m for m in listing.members if m.etag is None or etags.get(m.name) != m.etag]
    ctx.log.info("calendar.listed", calendar=url, changed=len(changed), deleted=len(gone),
                 by="sync-token" if listing.token else "etags")  # fmt: skip
    size = config.calendar_batch_size
    for first in range(0, len(changed), size):
        loaded = await asyncio.to_thread(dav.load, calendar, changed[first : first + size])
        made: list[Event] = []
        for item in loaded:
            etag = item.etag or _digest(item.data)
            if etags.get(item.name) != etag:  # listed without an ETag, and unchanged
                made += _events(url, item, etag, ctx)
                etags[item.name] = etag
        # the old token until every change it covers is sent: a cut-short run resumes
        yield Batch(made, {"calendars": copy.deepcopy(state)})
    if listing.token != known.get("token") or (gone and not changed):
        known["token"] = listing.token
        yield Batch([], {"calendars": copy.deepcopy(state)})


def _digest(data: str) -> str:
    """Stands in for an ETag a server did not give."""
    return "sha256:" + hashlib.sha256(data.encode()).hexdigest()


def _events(url: str, item: dav.Loaded, etag: str, ctx: FetchContext) -> list[Event]:
    """The raw object and one item per VEVENT; only the raw object where it cannot be
    read (the function dead-letters it with the reason), nothing where it holds no VEVENT."""
    text = item.data.lstrip("\ufeff \t\r\n")
    key = f"{url}{item.name}|{etag}"
    try:
        parsed = ical.parse(text)
    except ical.BadCalendar as exc:
        ctx.log.warning("calendar.unreadable_object", calendar=url, object=item.name,
                        reason=str(exc))  # fmt: skip
        parsed = None
    vevents = ical.events(parsed) if parsed is not None else []
    if parsed is not None and not vevents:
        return []
    written = ical.version_time(parsed) if parsed is not None else None
    time = min(written, ctx.now) if written is not None else ctx.now
    uid = next((str(v["UID"]) for v in vevents if v.get("UID")), None)
    common = {
        "timestamp": ical.rfc3339(time),
        "account": ctx.account,
        "calendar_id": url,
        "event_uid": (uid or item.name.removesuffix(".ics") or item.name)[:1024],
    }
    raw = {**common, "etag": etag[:256], "ical": text}
    made = [ctx.event(RAW, raw, key=key, time=time)]
    if parsed is not None:
        floating = ical.floating_zone(parsed, ctx.settings.calendar_floating_timezone)
        for vevent in vevents:
            item_data = _item(vevent, common, floating)
            which = item_data.get("recurrence_id", "")
            made.append(ctx.event(EVENTS, item_data, key=f"{key}|{which}", time=time))
    return made


def _item(vevent: Any, common: dict[str, Any], floating: ical.Floating) -> dict[str, Any]:
    """One VEVENT as ``external.calendar.events.raw`` has it."""
    when = ical.span(vevent, floating)
    data: dict[str, Any] = {
        **common,
        "event_uid": str(vevent.get("UID") or common["event_uid"])[:1024],
        "summary": ical.text(vevent, "SUMMARY") or "",
        "start": ical.rfc3339(when.start),
        "end": ical.rfc3339(when.end),
        "all_day": when.all_day,
        "status": ical.status(vevent),
    }
    for field, name in (("description", "DESCRIPTION"), ("location", "LOCATION")):
        value = ical.text(vevent, name)
        if value:
            data[field] = value
    people, _ = ical.attendees(vevent)
    if people:
        data["attendees"] = people
    if organizer := ical.organizer(vevent):
        data["organizer"] = organizer
    if when.timezone:
        data["timezone"] = when.timezone[:64]
    rule = vevent.get("RRULE")
    if rule is not None and not isinstance(rule, list):
        data["recurrence_rule"] = rule.to_ical().decode()[:1024]
    if vevent.get("RECURRENCE-ID") is not None:
        original = vevent.decoded("RECURRENCE-ID")
        data["recurrence_id"] = ical.rfc3339(ical.to_utc(original, floating.zone))
    return data
