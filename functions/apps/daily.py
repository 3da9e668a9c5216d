"""One device's app usage per local day: its sessions' foreground time summed by day.

A :class:`Usage` lives in the device's state beside its :class:`~functions.apps.sessions.Timeline`
and is fed as the timeline applies entries, in time order:

- each session with foreground time adds that time to the days it covers: a session
  across local midnight is split there (the part before to one day, after to the next)
  and counts as a session of each day it has time in; its launches count in the first;
- a session still open at midnight has its part before midnight added when the day
  closes (at most up to its start + ``max_session``, where a session whose end never
  came would be cut anyway), the rest when it ends;
- unlocks (an unlock after a lock or a screen off; a ``device_unlock`` and a
  ``user_present`` of the same unlock count once) and time with the screen on (from a
  ``screen_on`` to a ``screen_off``, never past the device's last sign of life when it
  then fell silent for longer than ``max_session``).

The local day of a moment is taken in the UTC offset of the entry being applied. A day
closes when the first entry of a later local day is applied: its summary comes out then,
and the state keeps only the open day. Time before the open day's start (a missed
foreground reaching back over midnight, a late event) is never added to a closed day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

__all__ = ["MAX_APPS", "DaySummary", "Usage"]

DAY = 86_400_000_000  # microseconds
MAX_APPS = 500  # apps listed in one summary (the schema's maxItems)
_MAX_KEPT = 2 * MAX_APPS  # apps kept per day in the state; more only count in the totals
_EPOCH = date(1970, 1, 1)
NAME, FOREGROUND, SESSIONS, LAUNCHES = range(4)


def _day(t: int, offset: int) -> int:
    """The local day of ``t`` (µs since the epoch, UTC) as days since 1970-01-01."""
    return (t + offset * 60_000_000) // DAY


def _iso(day: int) -> str:
    return (_EPOCH + timedelta(days=day)).isoformat()


def _split(a: int, b: int, offset: int) -> list[tuple[int, int]]:
    """``[a, b)`` cut at local midnights: (local day, microseconds in it)."""
    shift, pieces = offset * 60_000_000, []
    while a < b:
        day = (a + shift) // DAY
        end = min(b, (day + 1) * DAY - shift)
        pieces.append((day, end - a))
        a = end
    return pieces


def utc_offset(minutes: int) -> str:
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


@dataclass(frozen=True)
class DaySummary:
    """A closed local day: per app (id, name, foreground µs, sessions, launches), most
    foreground first, and the totals; ``closer`` (type, source, id) is the entry that
    closed it."""

    date: str
    offset: int
    closer: tuple[str, str, str]
    apps: tuple[tuple[str, str, int, int, int], ...]
    foreground: int
    sessions: int
    unlocks: int | None
    screen: int | None

    def payload(self) -> dict[str, Any]:
        """The summary's data, without device_id, derived_from and schema_version."""
        data: dict[str, Any] = {
            "timestamp": f"{self.date}T23:59:59{utc_offset(self.offset)}",
            "date": self.date,
            "utc_offset": utc_offset(self.offset),
            "apps": [{"app_identifier": app, "app_name": name, "foreground_seconds":
                      round(foreground / 1_000_000, 3), "sessions": sessions,
                      "launches": launches}
                     for app, name, foreground, sessions, launches in self.apps],
            "total_foreground_seconds": round(self.foreground / 1_000_000, 3),
            "sessions": self.sessions,
        }  # fmt: skip
        if self.unlocks is not None:
            data["unlocks"] = self.unlocks
        if self.screen is not None:
            data["screen_on_seconds"] = round(self.screen / 1_000_000, 3)
        return data

    def kept(self) -> dict[str, Any]:
        """As a JSON value (kept in the state's replies)."""
        return {"day": [self.date, self.offset, list(self.closer), [list(a) for a in self.apps],
                        self.foreground, self.sessions, self.unlocks, self.screen]}  # fmt: skip

    @classmethod
    def from_kept(cls, kept: dict[str, Any]) -> DaySummary:
        day, offset, closer, apps, foreground, sessions, unlocks, screen = kept["day"]
        return cls(day, offset, (closer[0], closer[1], closer[2]),
                   tuple((a[0], a[1], a[2], a[3], a[4]) for a in apps), foreground, sessions,
                   unlocks, screen)  # fmt: skip


class Usage:
    """The open day (and, while one entry is applied, any later day it reaches)."""

    def __init__(self, state: dict[str, Any] | None) -> None:
        state = state or {}
        self.day: int | None = state.get("day")  # the open local day
        self.floor: int | None = state.get("floor")  # time before this is in closed days
        self.days: dict[str, dict[str, Any]] = {
            k: {**v, "apps": {a: list(row) for a, row in v["apps"].items()}}
            for k, v in state.get("days", {}).items()
        }
        self.screen_since: int | None = state.get("screen_since")
        self.unlocked: bool = state.get("unlocked", False)
        self.seen: int | None = state.get("seen")  # the last applied entry's time
        self.offset: int = state.get("offset", 0)  # the UTC offset of that entry

    def dump(self) -> dict[str, Any]:
        return {"day": self.day, "floor": self.floor, "days": self.days,
                "screen_since": self.screen_since, "unlocked": self.unlocked,
                "seen": self.seen, "offset": self.offset}  # fmt: skip

    # ── one entry ───────────────────────────────────────────────────────────
    def begin(self, t: int, offset: int, max_gap: int) -> None:
        """Before an entry at ``t`` is applied."""
        self.offset = offset
        if self.day is None:
            self.day = _day(t, offset)
            self.floor = self.day * DAY - offset * 60_000_000
        if self.screen_since is not None and self.seen is not None and t - self.seen > max_gap:
            self._screen(self.screen_since, self.seen)  # silent with the screen on: died
            self.screen_since = None

    def system(self, kind: str, t: int) -> None:
        """A screen or lock entry."""
        if kind == "screen_on":
            self.screen_since = t if self.screen_since is None else self.screen_since
            self._bucket(_day(t, self.offset))[1].setdefault("screen", 0)
        elif kind == "screen_off":
            if self.screen_since is not None:
                self._screen(self.screen_since, t)
                self.screen_since = None
            self._bucket(_day(t, self.offset))[1].setdefault("screen", 0)
        if kind == "unlock":
            bucket = self._bucket(_day(t, self.offset))[1]
            bucket["unlocks"] = bucket.get("unlocks", 0) + (not self.unlocked)
            self.unlocked = True
        elif kind in ("lock", "screen_off"):
            if kind == "lock":
                self._bucket(_day(t, self.offset))[1].setdefault("unlocks", 0)
            self.unlocked = False

    def session(self, app: str, name: str, a: int, b: int, launches: int,
                counted: str | None = None) -> str | None:  # fmt: skip
        """Foreground time ``[a, b)`` of a session of ``app``; ``counted``: the day it was
        already counted as a session of. Returns the last day it is counted in."""
        if self.floor is not None:
            a = max(a, self.floor)
        for day, us in _split(a, b, self.offset):
            key, bucket = self._bucket(day)
            apps = bucket["apps"]
            row = apps.get(app)
            if row is None and len(apps) < _MAX_KEPT:
                row = apps[app] = [name, 0, 0, 0]
            new = key != counted
            if row is not None:
                row[NAME] = row[NAME] or name
                row[FOREGROUND] += us
                row[SESSIONS] += new
                row[LAUNCHES] += launches
            bucket["foreground"] += us
            bucket["sessions"] += new
            counted, launches = key, 0
        return counted

    def close(self, t: int, closer: tuple[str, str, str], open_session: dict[str, Any] | None,
              max_session: int) -> list[DaySummary]:  # fmt: skip
        """After an entry at ``t`` was applied: the days it closes."""
        self.seen = t
        day = _day(t, self.offset)
        if _iso(day) in self.days:
            self.days[_iso(day)]["offset"] = self.offset  # the day's latest offset
        if self.day is None or day <= self.day:
            return []
        start = day * DAY - self.offset * 60_000_000  # its local midnight, in UTC
        if open_session is not None:
            self.credit_open(open_session, min(start, open_session["start"] + max_session))
        if self.screen_since is not None and self.screen_since < start:
            self._screen(self.screen_since, start)
            self.screen_since = start
        closed = [self._summary(key, closer) for key in sorted(self.days) if key < _iso(day)]
        self.days = {key: v for key, v in self.days.items() if key >= _iso(day)}
        self.day, self.floor = day, max(start, self.floor or start)
        return closed

    def credit_open(self, session: dict[str, Any], upto: int) -> None:
        """Add a still open session's foreground time up to ``upto``, and mark it added."""
        counted_from = session["counted_from"]
        if counted_from is None:
            return
        a = max(counted_from, session.get("credited", counted_from))
        if upto <= a:
            return
        launches = session["launches"] - session.get("credited_launches", 0)
        session["counted_day"] = self.session(session["app"], session["name"], a, upto,
                                              launches, session.get("counted_day"))  # fmt: skip
        session["credited"], session["credited_launches"] = upto, session["launches"]

    # ── days ────────────────────────────────────────────────────────────────
    def _bucket(self, day: int) -> tuple[str, dict[str, Any]]:
        """The day's totals; a day before the open one (the offset went back) is the open one."""
        key = _iso(max(day, self.day if self.day is not None else day))
        bucket = self.days.get(key)
        if bucket is None:
            bucket = self.days[key] = {"apps": {}, "foreground": 0, "sessions": 0}
            bucket["offset"] = self.offset
        return key, bucket

    def _screen(self, a: int, b: int) -> None:
        if self.floor is not None:
            a = max(a, self.floor)
        for day, us in _split(a, b, self.offset):
            bucket = self._bucket(day)[1]
            bucket["screen"] = bucket.get("screen", 0) + us

    def _summary(self, key: str, closer: tuple[str, str, str]) -> DaySummary:
        bucket = self.days[key]
        rows = sorted(bucket["apps"].items(), key=lambda item: (-item[1][FOREGROUND], item[0]))
        apps = tuple((app, row[NAME] or app, row[FOREGROUND], row[SESSIONS], row[LAUNCHES])
                     for app, row in rows[:MAX_APPS])  # fmt: skip
        return DaySummary(key, bucket["offset"], closer, apps, bucket["foreground"],
                          bucket["sessions"], bucket.get("unlocks"),
                          bucket.get("screen"))  # fmt: skip
