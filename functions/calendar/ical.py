"""Reading iCalendar (RFC 5545) objects: times in UTC with the zone they were written in,
attendees, organizer and the text fields, as both the fetcher and the function need them.

Times: a time with a TZID (an IANA name, a Windows name, or a zone its own VTIMEZONE
defines) or in UTC keeps that zone's name beside its UTC value; a floating time (no
zone) is read in the calendar's X-WR-TIMEZONE, else in ``LOOM_CALENDAR_FLOATING_TIMEZONE``;
an all-day date is midnight UTC of that day, with no zone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from icalendar import Calendar, Component
from icalendar.timezone import tzid_from_dt

__all__ = [
    "BadCalendar",
    "Floating",
    "Span",
    "attendees",
    "events",
    "floating_zone",
    "organizer",
    "parse",
    "rfc3339",
    "span",
    "status",
    "text",
    "to_utc",
    "version_time",
]

# Properties an event cannot be placed in time without: broken, the object is unusable.
_TIMING = ("DTSTART", "DTEND", "DURATION", "RRULE", "RDATE", "EXDATE", "RECURRENCE-ID")
_PARTSTAT = {"needs-action", "accepted", "declined", "tentative", "delegated"}
_STATUS = {"confirmed", "tentative", "cancelled"}
_LIMITS = {"SUMMARY": 1024, "DESCRIPTION": 65536, "LOCATION": 1024}


class BadCalendar(ValueError):
    """Not a readable iCalendar object (the reason says why)."""


@dataclass(frozen=True)
class Floating:
    """The zone floating times are read in, and its name where the calendar gave one."""

    zone: tzinfo
    name: str | None = None


@dataclass(frozen=True)
class Span:
    """When an event (or one occurrence) is: UTC times and the zone it was written in."""

    start: datetime
    end: datetime
    all_day: bool
    timezone: str | None

    @property
    def minutes(self) -> float:
        return max((self.end - self.start).total_seconds() / 60, 0.0)


def parse(ical: str) -> Calendar:
    """The VCALENDAR in ``ical``, or :class:`BadCalendar` saying what is wrong with it."""
    try:
        calendar = Calendar.from_ical(ical)
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise BadCalendar(f"not an iCalendar object: {_short(exc)}") from None
    if not isinstance(calendar, Calendar) or calendar.name != "VCALENDAR":
        raise BadCalendar("the object is not a VCALENDAR")
    for event in calendar.walk("VEVENT"):
        uid = str(event.get("UID", "?"))
        broken = [f"{name}: {why}" for name, why in event.errors if name in _TIMING]
        if broken:
            raise BadCalendar(f"event {uid!r} has broken {'; '.join(broken)}")
        if event.get("DTSTART") is None:
            raise BadCalendar(f"event {uid!r} has no DTSTART")
    return calendar


def events(calendar: Calendar) -> list[Component]:
    """The VEVENTs of ``calendar`` (a series' master first, then its changed occurrences)."""
    return list(calendar.walk("VEVENT"))


def floating_zone(calendar: Calendar, default: str) -> Floating:
    """The zone floating times are read in: X-WR-TIMEZONE where valid, else ``default``
    (then unnamed: the source did not say)."""
    name = str(calendar.get("X-WR-TIMEZONE", "")).strip()
    if name:
        try:
            return Floating(ZoneInfo(name), name[:128])
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return Floating(ZoneInfo(default))


def to_utc(value: date | datetime, floating: tzinfo) -> datetime:
    """``value`` as an aware UTC time (a date: its midnight UTC; floating: in ``floating``)."""
    if not isinstance(value, datetime):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if value.tzinfo is None:
        value = value.replace(tzinfo=floating)
    return value.astimezone(UTC)


def zone_name(value: date | datetime) -> str | None:
    """The name of the zone ``value`` was written in (IANA where known, else its TZID)."""
    if not isinstance(value, datetime) or value.tzinfo is None:
        return None
    name = tzid_from_dt(value) or getattr(value.tzinfo, "key", None)
    return str(name)[:128] if name else None


def span(event: Component, floating: Floating) -> Span:
    """When ``event`` is: DTSTART to DTEND (or DTSTART + DURATION; else a day for a date,
    an instant for a time, as RFC 5545 says)."""
    start = event.decoded("DTSTART")
    if event.get("DTEND") is not None:
        end = event.decoded("DTEND")
    elif event.get("DURATION") is not None:
        end = start + event.decoded("DURATION")
    else:
        end = start if isinstance(start, datetime) else start + timedelta(days=1)
    all_day = not isinstance(start, datetime)
    zone = None if all_day else floating.name if start.tzinfo is None else zone_name(start)
    first, last = to_utc(start, floating.zone), to_utc(end, floating.zone)
    return Span(first, max(last, first), all_day, zone)


def version_time(calendar: Calendar) -> datetime | None:
    """When this version of the object was written: the latest LAST-MODIFIED (else DTSTAMP,
    else CREATED) of its events, in UTC; None where it says nowhere."""
    found = []
    for event in events(calendar):
        for name in ("LAST-MODIFIED", "DTSTAMP", "CREATED"):
            if event.get(name) is not None:
                try:
                    found.append(to_utc(event.decoded(name), UTC))
                except (ValueError, TypeError, AttributeError):
                    continue
                break
    return max(found, default=None)


def text(event: Component, name: str) -> str | None:
    """A text property (SUMMARY, DESCRIPTION, LOCATION), cut to what the schemas hold."""
    value = event.get(name)
    if value is None or isinstance(value, list):
        return None
    return str(value)[: _LIMITS.get(name, 1024)]


def _address(value: Any) -> str | None:
    """``mailto:ada@example.com`` → ``ada@example.com``; None for what is not an address."""
    address = str(value).strip()
    if address.lower().startswith("mailto:"):
        address = address[len("mailto:") :]
    return address if "@" in address and len(address) <= 320 and " " not in address else None


def organizer(event: Component) -> str | None:
    value = event.get("ORGANIZER")
    return _address(value) if value is not None and not isinstance(value, list) else None


def attendees(event: Component) -> tuple[list[dict[str, str]], int]:
    """The attendees that have an address (email, name, role, status), and how many are
    listed in all."""
    listed = event.get("ATTENDEE")
    listed = [] if listed is None else listed if isinstance(listed, list) else [listed]
    found = []
    for attendee in listed:
        email = _address(attendee)
        if email is None:
            continue
        params = getattr(attendee, "params", {})
        item = {"email": email}
        if params.get("CN"):
            item["name"] = str(params["CN"]).strip()[:256]
        if params.get("ROLE"):
            item["role"] = str(params["ROLE"]).lower()[:64]
        partstat = str(params.get("PARTSTAT", "")).lower()
        if partstat in _PARTSTAT:
            item["status"] = partstat
        found.append(item)
    return found, len(listed)


def status(event: Component) -> str:
    """STATUS lower-cased (confirmed, tentative, cancelled); confirmed where it says none."""
    value = str(event.get("STATUS", "")).lower()
    return value if value in _STATUS else "confirmed"


def rfc3339(moment: datetime) -> str:
    """``2026-11-26T08:00:00Z``."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _short(exc: Exception) -> str:
    return " ".join(str(exc).split())[:300]
