"""One device's app sessions, built from its timeline of app and screen/lock events.

Events of the two inputs (two Kafka topics) reach the function in order within each
input but interleaved arbitrarily across them (a phone uploads each input in batches
of its own, and after an outage one backlog before the other). So entries wait in a
reorder buffer and are applied in time order only once both inputs
have passed them (the watermark: the older of the two inputs' newest times, or the
newest time minus ``reorder`` when one input has stalled or was never seen). An entry
older than what has been applied is late: it is counted and dropped, never applied out
of order, so no duration is ever negative or counted twice.

Applied in order, the rules are:

- ``launch``/``foreground`` of app X opens X's session (a launch of the open app only
  counts a launch); another app's open session ends there (its background was missed).
- ``background``/``terminate``/``crash`` of the open app ends its session. A
  ``background`` with no session open but a reported ``duration_seconds`` is a session
  whose foreground was missed: it began that long before (never before the last
  session's end or the screen last came on).
- The device is *active* while the screen is on and it is unlocked. A screen off, lock
  or sleep ends the open session then (``ended_by: screen_off``); becoming active
  again reopens the app that was on top, if nothing else came on top meanwhile. A
  session opened while inactive (behind the lock screen) counts foreground time only
  from when the device became active.
- A session longer than ``max_session`` (its end never came: the device died, the
  monitor stopped) ends at the last event seen from the device during it, at most
  ``max_session`` after its start (``ended_by: timeout``).

A session is reported once it has ended, if it had foreground time (or crashed). Its
foreground time also goes into the device's usage of each local day it covers
(:mod:`functions.apps.daily`); a day's summary comes out when the first entry of a later
local day is applied.

Duplicates (the same event, or the same thing at the same instant under a new id) are
applied once. The last event of each input keeps the sessions it let out, so that event
redelivered after the other input moved on (its reply was lost) is answered the same.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from dataclasses import dataclass
from typing import Any

from functions.apps.daily import DaySummary, Usage
from functions.apps.inputs import (
    APP,
    APP_ID,
    APP_KINDS,
    DURATION,
    ID,
    KIND,
    NAME,
    OFFSET,
    SOURCE,
    TYPE,
    Entry,
    T,
)

__all__ = ["Limits", "Output", "Session", "Timeline"]

VERSION = 1


@dataclass(frozen=True)
class Limits:
    """Bounds of the timeline, in microseconds (from :class:`AppsSettings`)."""

    reorder: int
    max_session: int
    max_buffered: int
    resume: bool


@dataclass(frozen=True)
class Session:
    """An ended session: times in microseconds, offsets in minutes east of UTC."""

    app: str
    name: str
    start: int
    start_offset: int
    end: int
    end_offset: int
    foreground: int
    launches: int
    ended_by: str
    opener: tuple[str, str, str]  # (type, source, id) of the event that opened it


Output = Session | DaySummary


class Timeline:
    """A device's state: read from its state row's JSON, changed by :meth:`add`, and
    written back with :meth:`dump` (never shares a mutable part with what it read)."""

    def __init__(self, state: dict[str, Any], limits: Limits) -> None:
        if state.get("v") != VERSION:
            state = {}  # a state this code cannot read is started over
        self.limits = limits
        self.done: int | None = state.get("done")  # applied up to here; older is late
        self.marks: dict[str, int] = dict(state.get("marks", {}))  # newest time per input
        self.buffer: list[Entry] = list(state.get("buffer", []))
        self.screen_on: bool = state.get("screen_on", True)  # unknown: on and unlocked
        self.locked: bool = state.get("locked", False)
        self.active_since: int | None = state.get("active_since")
        self.inactive_since: int | None = state.get("inactive_since")
        self.last_end: int | None = state.get("last_end")
        self.resume: list[str] | None = state.get("resume")  # [app, name] on top when off
        opened = state.get("open")
        self.open: dict[str, Any] | None = dict(opened) if opened else None
        self.late: int = state.get("late", 0)
        # Per input, its last event and the sessions it let out: that event again (its
        # reply was lost while the other input moved on) gets the same reply again.
        self.replies: dict[str, list[Any]] = dict(state.get("replies", {}))
        self.usage = Usage(state.get("usage"))

    def dump(self) -> dict[str, Any]:
        return {
            "v": VERSION, "done": self.done, "marks": self.marks, "buffer": self.buffer,
            "screen_on": self.screen_on, "locked": self.locked,
            "active_since": self.active_since, "inactive_since": self.inactive_since,
            "last_end": self.last_end, "resume": self.resume, "open": self.open,
            "late": self.late, "replies": self.replies, "usage": self.usage.dump(),
        }  # fmt: skip

    @property
    def active(self) -> bool:
        return self.screen_on and not self.locked

    # ── ordering ────────────────────────────────────────────────────────────
    def add(self, entry: Entry) -> list[Output] | None:
        """Take one entry; the sessions and days it lets end, or None if it was late."""
        t = entry[T]
        stream = "app" if entry[TYPE] == APP else "system"
        last = self.replies.get(stream)
        if last is not None and last[0] == entry[SOURCE] and last[1] == entry[ID]:
            return [_output(s) for s in last[2]]
        if self.done is not None and t < self.done:
            self.late += 1
            return None
        self.marks[stream] = max(self.marks.get(stream, t), t)
        if not self._known(entry):
            insort(self.buffer, entry)
        ended = self._release()
        self.replies[stream] = [entry[SOURCE], entry[ID], [_kept(s) for s in ended]]
        return ended

    def _known(self, entry: Entry) -> bool:
        """The same event again, or the same thing at the same instant under a new id."""
        for held in self.buffer:
            if held[SOURCE] == entry[SOURCE] and held[ID] == entry[ID]:
                return True
            if held[T] == entry[T] and held[KIND] == entry[KIND] and held[APP_ID] == entry[APP_ID]:
                return True
        return False

    def _release(self) -> list[Output]:
        marks = list(self.marks.values())
        watermark = max(marks) - self.limits.reorder
        if len(marks) == 2:
            watermark = max(watermark, min(marks))
        ready = bisect_left(self.buffer, [watermark])
        ready = max(ready, len(self.buffer) - self.limits.max_buffered)
        ended: list[Output] = []
        for entry in self.buffer[:ready]:
            ended.extend(self._apply(entry))
        if ready:
            watermark = max(watermark, self.buffer[ready - 1][T])
            self.buffer = self.buffer[ready:]
        if self.done is None or watermark > self.done:
            self.done = watermark
        return ended

    # ── sessions ────────────────────────────────────────────────────────────
    def _apply(self, entry: Entry) -> list[Output]:
        self.usage.begin(entry[T], entry[OFFSET], self.limits.max_session)
        ended = self._app(entry) if entry[KIND] in APP_KINDS else self._system(entry)
        if self.open is not None:  # a sign of life while the session is open
            self.open["seen"] = max(self.open["seen"], entry[T])
        closer = (entry[TYPE], entry[SOURCE], entry[ID])
        days = self.usage.close(entry[T], closer, self.open, self.limits.max_session)
        return [*(s for s in ended if s is not None), *days]

    def _app(self, entry: Entry) -> list[Session | None]:
        kind, app, name, t = entry[KIND], entry[APP_ID], entry[NAME], entry[T]
        current = self.open
        if kind in ("launch", "foreground"):
            self.resume = None  # something new is on top
            if current is not None and current["app"] == app:
                current["launches"] += kind == "launch"
                current["name"] = current["name"] or name
                return []
            ended = [self._close(t, entry[OFFSET], "background")] if current else []
            self._start(entry, launches=int(kind == "launch"))
            return ended
        if self.resume is not None and self.resume[0] == app:
            self.resume = None  # it left the top (or died) while the screen was off
        if current is not None and current["app"] == app:
            return [self._close(t, entry[OFFSET], kind)]
        if current is None and kind == "background" and entry[DURATION]:
            return [self._missed_foreground(entry)]
        return []  # another app's background or end: the open session goes on

    def _system(self, entry: Entry) -> list[Session | None]:
        was = self.active
        kind, t = entry[KIND], entry[T]
        self.usage.system(kind, t)
        if kind in ("screen_on", "screen_off"):
            self.screen_on = kind == "screen_on"
        elif kind in ("lock", "unlock"):
            self.locked = kind == "lock"
        if not self.active:
            if was:
                self.inactive_since = t
            if self.open is not None and kind in ("screen_off", "lock"):
                self.resume = [self.open["app"], self.open["name"]]
                return [self._close(t, entry[OFFSET], "screen_off")]
        elif not was:
            self.active_since, self.inactive_since = t, None
            if self.open is not None:
                if self.open["counted_from"] is None:
                    self.open["counted_from"] = t
            elif self.resume is not None and self.limits.resume:
                app, name = self.resume
                self._start([*entry[:APP_ID], app, name, None], launches=0)
            self.resume = None
        return []

    def _start(self, entry: Entry, launches: int) -> None:
        t = entry[T]
        self.open = {
            "app": entry[APP_ID], "name": entry[NAME], "start": t, "offset": entry[OFFSET],
            "counted_from": t if self.active else None, "launches": launches, "seen": t,
            "opener": [entry[TYPE], entry[SOURCE], entry[ID]],
        }  # fmt: skip

    def _close(self, t: int, offset: int, ended_by: str) -> Session | None:
        current = self.open
        assert current is not None
        self.open = None
        start, end = current["start"], t
        if end - start > self.limits.max_session:
            end = min(current["seen"], start + self.limits.max_session)
            offset, ended_by = current["offset"], "timeout"
        self.last_end = end
        counted = current["counted_from"]
        foreground = max(0, end - counted) if counted is not None else 0
        session = self._session(current["app"], current["name"], start, current["offset"], end,
                                offset, foreground, current["launches"], ended_by,
                                current["opener"])  # fmt: skip
        if session is not None:
            self.usage.credit_open(current, end)
        return session

    def _missed_foreground(self, entry: Entry) -> Session | None:
        """A background whose foreground never came: it began ``duration`` before."""
        t = entry[T]
        floors = [x for x in (self.last_end, self.active_since) if x is not None]
        start = max([t - entry[DURATION], *floors])
        if start >= t:
            return None
        self.last_end = t
        counted_to = t if self.active else (self.inactive_since or start)
        session = self._session(entry[APP_ID], entry[NAME], start, entry[OFFSET], t,
                                entry[OFFSET], max(0, counted_to - start), 0, "background",
                                [entry[TYPE], entry[SOURCE], entry[ID]])  # fmt: skip
        if session is not None:
            self.usage.session(entry[APP_ID], entry[NAME], start, counted_to, 0)
        return session

    @staticmethod
    def _session(app: str, name: str, start: int, start_offset: int, end: int,
                 end_offset: int, foreground: int, launches: int, ended_by: str,
                 opener: list[str]) -> Session | None:  # fmt: skip
        if foreground <= 0 and ended_by != "crash":
            return None  # never on screen: nothing anyone used
        return Session(app, name, start, start_offset, end, end_offset, foreground, launches,
                       ended_by, (opener[0], opener[1], opener[2]))  # fmt: skip


def _kept(s: Output) -> list[Any] | dict[str, Any]:
    if isinstance(s, DaySummary):
        return s.kept()
    return [s.app, s.name, s.start, s.start_offset, s.end, s.end_offset, s.foreground,
            s.launches, s.ended_by, list(s.opener)]  # fmt: skip


def _output(kept: list[Any] | dict[str, Any]) -> Output:
    """A session (a JSON list) or a day (a JSON object) as :meth:`Timeline.dump` kept it."""
    if isinstance(kept, dict):
        return DaySummary.from_kept(kept)
    app, name, start, start_offset, end, end_offset, foreground, launches, ended_by, opener = kept
    return Session(app, name, start, start_offset, end, end_offset, foreground, launches,
                   ended_by, (opener[0], opener[1], opener[2]))  # fmt: skip
