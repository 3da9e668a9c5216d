"""iCalendar text for the calendar tests, written out as clients write it."""

from __future__ import annotations

from datetime import UTC, date, datetime

BERLIN_VTIMEZONE = [
    "BEGIN:VTIMEZONE", "TZID:Europe/Berlin",
    "BEGIN:DAYLIGHT", "TZOFFSETFROM:+0100", "TZOFFSETTO:+0200", "TZNAME:CEST",
    "DTSTART:19700329T020000", "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU", "END:DAYLIGHT",
    "BEGIN:STANDARD", "TZOFFSETFROM:+0200", "TZOFFSETTO:+0100", "TZNAME:CET",
    "DTSTART:19701025T030000", "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU", "END:STANDARD",
    "END:VTIMEZONE",
]  # fmt: skip


def ics(*lines: str) -> str:
    """A VCALENDAR around ``lines`` (CRLF line ends, as RFC 5545 has them)."""
    body = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Loom tests//EN", *lines, "END:VCALENDAR"]
    return "".join(line + "\r\n" for line in body)


def utc(moment: datetime) -> str:
    """``20261126T080000Z``."""
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def local(moment: datetime) -> str:
    """``20261126T090000`` (the wall time, for a TZID= or a floating time)."""
    return moment.strftime("%Y%m%dT%H%M%S")


def day(value: date) -> str:
    return value.strftime("%Y%m%d")


def vevent(uid: str, *lines: str, modified: datetime | None = None) -> list[str]:
    stamp = [f"DTSTAMP:{utc(modified)}", f"LAST-MODIFIED:{utc(modified)}"] if modified else []
    return ["BEGIN:VEVENT", f"UID:{uid}", *stamp, *lines, "END:VEVENT"]
