"""The ``calendar`` fetcher: CalDAV accounts in, each new or changed calendar object out.

For every calendar object (one CalDAV resource: an event, or a recurring series with
its changed occurrences) that is new or changed since the last run, it makes:

- one ``external.calendar.raw``: the object's iCalendar text as the server has it, with
  its ETag; the ``calendar`` function turns it into one enriched event per occurrence;
- one ``external.calendar.events.raw`` per VEVENT in it: the event as written (title,
  times in UTC and the zone, attendees, organizer, status, the recurrence rule).

Time runs in periods of ``LOOM_CALENDAR_REFRESH_DAYS`` (counted from 1970-01-01 UTC).
An object is sent as of (``fetched_at``, and the events' time) the start of the period
it is fetched in, or when its version was written (LAST-MODIFIED, else DTSTAMP; kept as
``last_modified``) if that is later, never later than the run. Ids follow from the
object's href, ETag and period, so fetching the same version again in the same period
makes the same events. A recurring object is sent again in every later period, changed
or not, until its last occurrence is past: the function expands it around each sending,
so its occurrences move forward and it stays within the catalog's retention.

Deleted objects make no event (no calendar type says "gone"); they leave the cursor.
Objects without a VEVENT (tasks, journals) are skipped.

The cursor keeps per calendar the sync token (RFC 6578), the ETag of every object seen,
and for each recurring one its URL and the period it was last sent in; it is saved
after each batch of ``LOOM_CALENDAR_BATCH_SIZE`` objects, so a run cut short resumes
without sending the objects it had sent again. A cursor kept before refreshes starts
over (every object is sent once more).
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from caldav.collection import Calendar
from caldav.lib.url import URL

from functions.calendar import dav, ical
from functions.calendar.rules import last_start, time_limit
from functions.calendar.settings import CalDavAccount, CalendarSettings
from loom.runtime.event import Event
from loom.runtime.fetcher import Batch, FetchContext, fetcher

__all__ = ["EVENTS", "RAW", "fetch", "period_start"]

RAW = "external.calendar.raw"
EVENTS = "external.calendar.events.raw"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


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


def period_start(now: datetime, days: int) -> datetime:
    """The start of the refresh period ``now`` is in (periods of ``days`` from 1970)."""
    length = timedelta(days=days)
    return _EPOCH + ((now - _EPOCH) // length) * length


async def _calendar(
    calendar: Calendar, state: dict[str, Any], config: CalendarSettings, ctx: FetchContext
) -> AsyncIterator[Batch]:
    url = str(calendar.url)
    known: dict[str, Any] = state.setdefault(url, {})
    if "refresh" not in known:  # new, or kept before refreshes: start over
        known.clear()
        known.update({"token": None, "etags": {}, "refresh": {}})
    etags: dict[str, str] = known["etags"]
    refresh: dict[str, dict[str, str]] = known["refresh"]  # name: {href, since}
    period = ical.rfc3339(period_start(ctx.now, config.calendar_refresh_days))
    listing = await asyncio.to_thread(
        dav.changes, calendar, known.get("token"), config.calendar_sync_tokens
    )
    gone = set(listing.deleted)
    if listing.full:
        gone |= set(etags) - {m.name for m in listing.members}
    for name in gone:
        etags.pop(name, None)
        refresh.pop(name, None)
    changed = [m for m in listing.members if m.etag is None or etags.get(m.name) != m.etag]
    names = {m.name for m in changed}
    due = [
        dav.Member(name, URL.objectify(entry["href"]), etags.get(name))
        for name, entry in refresh.items()
        if _older(entry["since"], period) and name not in names
    ]
    ctx.log.info("calendar.listed", calendar=url, changed=len(changed), deleted=len(gone),
                 refreshed=len(due), by="sync-token" if listing.token else "etags")  # fmt: skip
    todo = changed + due
    size = config.calendar_batch_size
    for first in range(0, len(todo), size):
        asked = todo[first : first + size]
        loaded = await asyncio.to_thread(dav.load, calendar, asked)
        returned = {item.name for item in loaded}
        for member in asked:  # a recurring object gone since: a listing will say so
            if member.name not in returned:
                refresh.pop(member.name, None)
        wanted = []
        for item in loaded:
            etag = item.etag or _digest(item.data)
            again = item.name in refresh and _older(refresh[item.name]["since"], period)
            if etags.get(item.name) != etag or again:  # not one listed without an ETag
                wanted.append((item, etag))  # and unchanged, unless it is due again
        sent = await asyncio.to_thread(_objects, url, wanted, period, ctx)
        made: list[Event] = []
        for (item, etag), one in zip(wanted, sent, strict=True):
            made += one.events
            etags[item.name] = etag
            if one.recurs:
                refresh[item.name] = {"href": item.href, "since": period}
            else:
                refresh.pop(item.name, None)
        # the old token until every change it covers is sent: a cut-short run resumes
        yield Batch(made, {"calendars": copy.deepcopy(state)})
    if listing.token != known.get("token") or (gone and not todo):
        known["token"] = listing.token
        yield Batch([], {"calendars": copy.deepcopy(state)})


def _objects(
    url: str, wanted: list[tuple[dav.Loaded, str]], period: str, ctx: FetchContext
) -> list[_Sent]:
    """:func:`_object` of each (it reads them: run in a thread)."""
    return [_object(url, item, etag, period, ctx) for item, etag in wanted]


def _older(since: str, period: str) -> bool:
    """Whether a period start kept as text is before ``period``."""
    return datetime.fromisoformat(since) < datetime.fromisoformat(period)


def _digest(data: str) -> str:
    """Stands in for an ETag a server did not give."""
    return "sha256:" + hashlib.sha256(data.encode()).hexdigest()


@dataclass(frozen=True)
class _Sent:
    events: list[Event]
    recurs: bool  # send it again next period


def _object(url: str, item: dav.Loaded, etag: str, period: str, ctx: FetchContext) -> _Sent:
    """The raw object and one item per VEVENT; only the raw object where it cannot be
    read (the function dead-letters it with the reason), nothing where it holds no VEVENT."""
    config: CalendarSettings = ctx.settings
    text = item.data.lstrip("\ufeff \t\r\n")
    key = f"{url}{item.name}|{etag}|{period}"
    try:
        parsed = ical.parse(text)
    except ical.BadCalendar as exc:
        ctx.log.warning("calendar.unreadable_object", calendar=url, object=item.name,
                        reason=str(exc))  # fmt: skip
        parsed = None
    vevents = ical.events(parsed) if parsed is not None else []
    if parsed is not None and not vevents:
        return _Sent([], recurs=False)
    written = ical.version_time(parsed) if parsed is not None else None
    since = datetime.fromisoformat(period)
    time = max(since, min(written, ctx.now)) if written is not None else since
    uid = next((str(v["UID"]) for v in vevents if v.get("UID")), None)
    common = {
        "timestamp": ical.rfc3339(time),
        "account": ctx.account,
        "calendar_id": url,
        "event_uid": (uid or item.name.removesuffix(".ics") or item.name)[:1024],
    }
    raw = {**common, "etag": etag[:256], "fetched_at": ical.rfc3339(time), "ical": text}
    if written is not None:
        raw["last_modified"] = ical.rfc3339(written)
    made = [ctx.event(RAW, raw, key=key, time=time)]
    if parsed is None:
        return _Sent(made, recurs=False)
    floating = ical.floating_zone(parsed, config.calendar_floating_timezone)
    for vevent in vevents:
        item_data = _item(vevent, common, floating)
        which = item_data.get("recurrence_id", "")
        made.append(ctx.event(EVENTS, item_data, key=f"{key}|{which}", time=time))
    return _Sent(made, recurs=_recurs(parsed, floating, time, config))


def _recurs(
    calendar: Any, floating: ical.Floating, time: datetime, config: CalendarSettings
) -> bool:
    """Whether ``calendar`` recurs, and may still have occurrences the next period's
    sending would make (its rules' end cannot be told, or is not past)."""
    if not any(v.get("RRULE") is not None or v.get("RDATE") is not None
               for v in ical.events(calendar)):  # fmt: skip
        return False
    try:
        with time_limit(config.calendar_expand_timeout_seconds, "looking for its end"):
            last = last_start(calendar, floating, config.calendar_max_rule_steps)
    except (ValueError, TypeError, KeyError):  # the function says what is wrong with it
        return True
    return last is None or last >= time - timedelta(days=config.calendar_expand_past_days)


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
    if modified := _modified(vevent):
        data["last_modified"] = ical.rfc3339(modified)
    return data


def _modified(vevent: Any) -> datetime | None:
    """When this VEVENT was last written (LAST-MODIFIED, else DTSTAMP), in UTC."""
    for name in ("LAST-MODIFIED", "DTSTAMP"):
        if vevent.get(name) is not None:
            try:
                return ical.to_utc(vevent.decoded(name), UTC)
            except (ValueError, TypeError, AttributeError):
                return None
    return None
