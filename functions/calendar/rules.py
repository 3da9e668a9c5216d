"""Keeping the expansion of recurrence rules bounded.

``dateutil`` (under ``recurring-ical-events``) walks a rule from its DTSTART, one period
(second, hour, day, …) after the other, however long before the window that is, and
past the window's end until it finds one more instance: to the year 9999 for a rule
that never matches again. So before a series is expanded, every RRULE of a copy of it
is given an end (UNTIL), and the work is counted first:

- the work of a rule is its periods from DTSTART to the window's end, times the
  instances one period can hold (its BYxxx lists); ``budget`` of it is allowed. A rule
  that needs more ends where the budget does (the expansion is cut short there), and
  one whose budget runs out before the window even starts cannot be expanded at all
  (:class:`BadCalendar`, saying why: the object is a dead letter);
- a rule that ended before the window is cut to its first instance (nothing it makes
  falls in the window, and nothing before it need be walked);
- a rule without COUNT ends at the window's end; one with COUNT has its instances
  counted (within the budget) and ends at its last one, or at the window's end.

dateutil checks UNTIL only on an instance it found, so a rule that never matches again
(BYMONTH=2;BYMONTHDAY=30) still walks on: :func:`time_limit` stops that, the last guard.
"""

from __future__ import annotations

import copy
import math
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from types import FrameType
from typing import Any

from dateutil.rrule import rrule, rrulestr
from icalendar import Calendar, Component

from functions.calendar.ical import BadCalendar, Floating, events, to_utc

__all__ = ["bound", "last_start", "per_day", "time_limit"]

# The shortest a period of each FREQ can be (so the periods in a span are not undercounted).
_PERIOD = {
    "SECONDLY": timedelta(seconds=1),
    "MINUTELY": timedelta(minutes=1),
    "HOURLY": timedelta(hours=1),
    "DAILY": timedelta(days=1),
    "WEEKLY": timedelta(weeks=1),
    "MONTHLY": timedelta(days=28),
    "YEARLY": timedelta(days=365),
}
# The BYxxx lists that add instances within one period of each FREQ (finer than it).
_TIMES = {
    "YEARLY": ("BYHOUR", "BYMINUTE", "BYSECOND"),
    "MONTHLY": ("BYHOUR", "BYMINUTE", "BYSECOND"),
    "WEEKLY": ("BYHOUR", "BYMINUTE", "BYSECOND"),
    "DAILY": ("BYHOUR", "BYMINUTE", "BYSECOND"),
    "HOURLY": ("BYMINUTE", "BYSECOND"),
    "MINUTELY": ("BYSECOND",),
    "SECONDLY": (),
}
_DAY_PARTS = ("BYYEARDAY", "BYWEEKNO", "BYMONTHDAY", "BYDAY")
_LATEST = datetime(9999, 12, 31, tzinfo=UTC)
_REACH = timedelta(days=1)  # rules end this much after the window: zones and all-day dates


def _steps(rule: Any, start: datetime, end: datetime) -> int:
    """The work of walking ``rule`` from ``start`` to ``end`` (both UTC)."""
    freq, step = _freq(rule)
    periods = max(math.ceil((end - start) / step), 0) + 1
    return periods * _per_period(rule, freq)


def per_day(calendar: Calendar) -> float:
    """How many instances a day the rules of ``calendar`` can make at most (RDATEs aside)."""
    total = 0.0
    for vevent in events(calendar):
        for rule in _rules(vevent):
            freq, step = _freq(rule)
            total += _per_period(rule, freq) / (step / timedelta(days=1))
    return total


def bound(
    calendar: Calendar, *, start: datetime, end: datetime, floating: Floating, budget: int
) -> tuple[Calendar, datetime | None]:
    """A copy of ``calendar`` whose every rule ends by ``end`` (see the module), and where
    the budget ended one before ``end``, the earliest such end (None: none did)."""
    bounded = copy.deepcopy(calendar)
    cut: datetime | None = None
    for vevent in events(bounded):
        for rule in _rules(vevent):
            stop = _bound(rule, vevent, start=start, end=end, floating=floating, budget=budget)
            if stop is not None and (cut is None or stop < cut):
                cut = stop
    return bounded, cut


def last_start(calendar: Calendar, floating: Floating, budget: int) -> datetime | None:
    """When the last occurrence of ``calendar``'s events starts at the latest (UTC); None
    where a rule never ends, or its end (COUNT) cannot be found within ``budget``."""
    latest = []
    for vevent in events(calendar):
        dtstart = vevent.decoded("DTSTART")
        latest.append(to_utc(dtstart, floating.zone))
        dates = vevent.get("RDATE")
        for listed in dates if isinstance(dates, list) else [dates] if dates else []:
            for value in listed.dts:
                moment = value.dt[0] if isinstance(value.dt, tuple) else value.dt
                latest.append(to_utc(moment, floating.zone))
        for rule in _rules(vevent):
            until = _one(rule, "UNTIL")
            if until is not None:
                latest.append(to_utc(until, floating.zone))
                continue
            count = _one(rule, "COUNT")
            if count is None:
                return None
            first = to_utc(dtstart, floating.zone)
            last = _nth(rule, dtstart, int(count), _affordable(rule, first, budget), floating)
            if last is None:
                return None
            latest.append(to_utc(last, floating.zone))
    return max(latest, default=None)


class _OutOfTime(Exception):
    """Raised into the code a time limit stops (no ValueError: nothing there catches it)."""


@contextmanager
def time_limit(seconds: float, what: str) -> Iterator[None]:
    """Stop the code run within, in this thread, once ``seconds`` have passed, with
    :class:`BadCalendar` saying ``what`` took too long. dateutil's loop makes a Python
    call every period, even one without an instance: a trace function of this thread
    checks the clock on those calls (and the code runs about twice as slow meanwhile)."""
    deadline = time.monotonic() + seconds
    calls = 0

    def check(frame: FrameType, event: str, arg: Any) -> None:
        nonlocal calls
        calls += 1
        if calls % 256 == 0 and time.monotonic() > deadline:
            raise _OutOfTime

    previous = sys.gettrace()
    sys.settrace(check)
    try:
        yield
    except _OutOfTime:
        raise BadCalendar(f"{what} took over {seconds:g} s: stopped") from None
    finally:
        sys.settrace(previous)


def _bound(
    rule: Any,
    vevent: Component,
    *,
    start: datetime,
    end: datetime,
    floating: Floating,
    budget: int,
) -> datetime | None:
    """End ``rule`` (in place) as the module says; the budget's end where it cut it short."""
    dtstart = vevent.decoded("DTSTART")
    first = to_utc(dtstart, floating.zone)
    affordable = _affordable(rule, first, budget)
    reach = min(end + _REACH, affordable)
    count = _one(rule, "COUNT")
    if count is not None:
        last = _nth(rule, dtstart, int(count), reach, floating)
        if last is not None:  # it ends by itself, within the budget
            _set_until(rule, _same_kind(last, dtstart))
            return None
    else:
        until = _one(rule, "UNTIL")
        if until is not None and to_utc(until, floating.zone) < start:
            # over before the window: its first instance will do
            _set_until(rule, _at(first, dtstart, floating))
            return None
        if until is not None and to_utc(until, floating.zone) <= reach:
            return None
    if affordable < end:
        if affordable <= start:
            raise BadCalendar(
                f"its rule {_text(rule)!r} from {first:%Y-%m-%d %H:%M} UTC would take "
                f"{_steps(rule, first, start):,} steps to reach the window from "
                f"{start:%Y-%m-%d} (at most {budget:,} are taken): not expanded"
            )
        _set_until(rule, _at(affordable, dtstart, floating))
        return affordable
    _set_until(rule, _at(reach, dtstart, floating))
    return None


def _rules(vevent: Component) -> list[Any]:
    rules = vevent.get("RRULE")
    return [] if rules is None else rules if isinstance(rules, list) else [rules]


def _one(rule: Any, name: str) -> Any:
    values = rule.get(name)
    return values[0] if values else None


def _text(rule: Any) -> str:
    return str(rule.to_ical().decode())[:200]


def _freq(rule: Any) -> tuple[str, timedelta]:
    freq = str(_one(rule, "FREQ") or "").upper()
    if freq not in _PERIOD:
        raise BadCalendar(f"its rule {_text(rule)!r} has no known FREQ")
    interval = max(int(_one(rule, "INTERVAL") or 1), 1)
    return freq, _PERIOD[freq] * interval


def _per_period(rule: Any, freq: str) -> int:
    """How many instances one period of ``rule`` can hold (an upper bound)."""
    days = 1
    if freq == "YEARLY":
        days = 366 if any(rule.get(p) for p in _DAY_PARTS) else len(rule.get("BYMONTH") or [1])
    elif freq == "MONTHLY" and any(rule.get(p) for p in _DAY_PARTS):
        days = 31
    elif freq == "WEEKLY" and rule.get("BYDAY"):
        days = len(rule.get("BYDAY"))
    return max(days * math.prod(len(rule.get(p) or [1]) for p in _TIMES[freq]), 1)


def _affordable(rule: Any, first: datetime, budget: int) -> datetime:
    """How far from ``first`` the rule can be walked within ``budget``."""
    freq, step = _freq(rule)
    try:
        return first + step * max(budget // _per_period(rule, freq) - 1, 0)
    except OverflowError:
        return _LATEST


def _nth(
    rule: Any, dtstart: date, count: int, until: datetime, floating: Floating
) -> datetime | None:
    """The ``count``-th instance of ``rule`` (as dateutil gives it), if it comes by ``until``."""
    plain = copy.deepcopy(rule)
    plain.pop("COUNT", None)
    plain.pop("UNTIL", None)
    start = dtstart if isinstance(dtstart, datetime) else datetime(*dtstart.timetuple()[:3])
    try:
        walk = rrulestr(plain.to_ical().decode(), dtstart=start)
        if not isinstance(walk, rrule):
            raise ValueError("not one rule")
        limit = until if start.tzinfo is not None else _wall(until, dtstart, floating)
        for n, instance in enumerate(walk.replace(until=limit), 1):
            if n >= count:
                return instance
    except (ValueError, TypeError, OverflowError) as exc:
        reason = " ".join(str(exc).split())[:300]
        raise BadCalendar(f"its rule {_text(rule)!r} cannot be read: {reason}") from None
    return None


def _wall(moment: datetime, dtstart: date, floating: Floating) -> datetime:
    """``moment`` (UTC) as the naive time a floating or all-day ``dtstart`` is read in."""
    zone = floating.zone if isinstance(dtstart, datetime) else UTC
    return moment.astimezone(zone).replace(tzinfo=None)


def _at(moment: datetime, dtstart: date, floating: Floating) -> date:
    """``moment`` (UTC) as an UNTIL for a rule starting at ``dtstart`` (RFC 5545: a date
    for a date, UTC for a time in a zone, a floating time for a floating one)."""
    if not isinstance(dtstart, datetime):
        return moment.astimezone(UTC).date()
    if dtstart.tzinfo is None:
        return _wall(moment, dtstart, floating)
    return moment.astimezone(UTC)


def _same_kind(instance: datetime, dtstart: date) -> date:
    """A dateutil instance as an UNTIL for a rule starting at ``dtstart``."""
    if not isinstance(dtstart, datetime):
        return instance.date()
    return instance.astimezone(UTC) if dtstart.tzinfo is not None else instance


def _set_until(rule: Any, until: date) -> None:
    rule.pop("COUNT", None)
    rule["UNTIL"] = [until]
