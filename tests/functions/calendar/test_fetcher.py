"""What a person sees of the calendar fetcher against a real CalDAV server (Radicale):
every event once, then only what changed, and recurring objects once more each refresh
period; resumes where a cut-short run stopped; a wrong password or a server that is down
fails that account alone, backs off and never shows the password."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import caldav
from structlog.testing import capture_logs

from functions.calendar.fetcher import EVENTS, RAW, fetch, period_start
from functions.calendar.ical import rfc3339
from functions.calendar.settings import CalDavAccount, CalendarSettings
from loom.logging import get_logger
from loom.runtime.event import Event
from loom.runtime.fetcher import Batch, FetchContext
from loom.testing import FetcherHarness
from tests.functions.calendar.conftest import USERS, Radicale
from tests.functions.calendar.ics import BERLIN_VTIMEZONE, day, ics, local, utc, vevent

BERLIN = ZoneInfo("Europe/Berlin")


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


class Diary:
    """Three events in a calendar of its own: a weekly meeting in Europe/Berlin, an
    all-day event and a meeting with attendees."""

    def __init__(self, calendar: caldav.Calendar) -> None:
        self.calendar = calendar
        self.modified = _now() - timedelta(hours=1)
        today = self.modified.astimezone(BERLIN).date()
        self.weekly_first = datetime.combine(today - timedelta(days=7), datetime.min.time(),
                                             BERLIN).replace(hour=9)  # fmt: skip
        self.holiday = today + timedelta(days=10)
        self.review = self.modified.replace(minute=0, second=0) + timedelta(days=1)
        self.save("weekly@loom.test", self.weekly())
        self.save("holiday@loom.test", self.all_day())
        self.save("review@loom.test", self.with_attendees())

    def save(self, uid: str, text: str) -> None:
        self.calendar.add_event(text)

    def weekly(self, summary: str = "Weekly planning", modified: datetime | None = None) -> str:
        start = self.weekly_first
        return ics(*BERLIN_VTIMEZONE, *vevent(
            "weekly@loom.test",
            f"DTSTART;TZID=Europe/Berlin:{local(start)}",
            f"DTEND;TZID=Europe/Berlin:{local(start + timedelta(minutes=45))}",
            "RRULE:FREQ=WEEKLY;COUNT=6", f"SUMMARY:{summary}",
            modified=modified or self.modified,
        ))  # fmt: skip

    def all_day(self) -> str:
        return ics(*vevent(
            "holiday@loom.test", f"DTSTART;VALUE=DATE:{day(self.holiday)}",
            f"DTEND;VALUE=DATE:{day(self.holiday + timedelta(days=1))}", "SUMMARY:Holiday",
            modified=self.modified,
        ))  # fmt: skip

    def with_attendees(self) -> str:
        return ics(*vevent(
            "review@loom.test", f"DTSTART:{utc(self.review)}",
            f"DTEND:{utc(self.review + timedelta(hours=1))}", "SUMMARY:Design review",
            "LOCATION:Room 3.14", "DESCRIPTION:Bring the drafts.", "STATUS:TENTATIVE",
            "ORGANIZER;CN=Ada Lovelace:mailto:ada@example.com",
            "ATTENDEE;CN=Grace Hopper;ROLE=REQ-PARTICIPANT;PARTSTAT=ACCEPTED:"
            "mailto:grace@example.com",
            "ATTENDEE;ROLE=OPT-PARTICIPANT;PARTSTAT=NEEDS-ACTION:mailto:alan@example.com",
            modified=self.modified,
        ))  # fmt: skip


def of_type(events: list[Event], type_: str) -> dict[str, Event]:
    """``type_``'s events by their event UID (one each)."""
    found = [e for e in events if e.type == type_]
    by_uid = {e.data["event_uid"]: e for e in found}
    assert len(by_uid) == len(found), "an event UID came twice"
    return by_uid


async def cursor_of(h: FetcherHarness, account: str) -> dict[str, Any]:
    row = await h.cursors.get("calendar", account)
    calendars: dict[str, Any] = row.cursor["calendars"]
    return calendars


async def test_first_run_emits_every_object_and_the_events_in_it(radicale: Radicale) -> None:
    diary = Diary(radicale.new_calendar())
    h = FetcherHarness(fetch, settings=radicale.settings(
        radicale.account(calendars=[diary.calendar.id])))  # fmt: skip
    (report,) = await h.run()
    assert (report.account, report.status, report.emitted, report.invalid) == (
        "ada@127.0.0.1", "ok", 6, 0)  # fmt: skip
    raws, items = of_type(h.events, RAW), of_type(h.events, EVENTS)
    assert set(raws) == set(items) == {"weekly@loom.test", "holiday@loom.test", "review@loom.test"}
    assert len({e.id for e in h.events}) == 6
    assert {e.source for e in h.events} == {"/loom/fetchers/calendar"}
    weekly = raws["weekly@loom.test"]
    assert weekly.data["ical"].startswith("BEGIN:VCALENDAR")
    assert "RRULE:FREQ=WEEKLY;COUNT=6" in weekly.data["ical"]
    assert weekly.data["etag"]
    assert weekly.data["calendar_id"] == str(diary.calendar.url)
    assert weekly.data["account"] == "ada@127.0.0.1"
    # as of when this version was written (or the start of this refresh period, if later)
    assert weekly.time == max(diary.modified, period_start(_now(), 30))
    assert weekly.data["timestamp"] == weekly.data["fetched_at"] == rfc3339(weekly.time)
    assert weekly.data["last_modified"] == rfc3339(diary.modified)

    series = items["weekly@loom.test"].data
    assert series["recurrence_rule"] == "FREQ=WEEKLY;COUNT=6"
    assert series["timezone"] == "Europe/Berlin"
    assert datetime.fromisoformat(series["start"]) == diary.weekly_first
    assert (series["summary"], series["all_day"], series["status"]) == (
        "Weekly planning", False, "confirmed")  # fmt: skip
    holiday = items["holiday@loom.test"].data
    assert holiday["all_day"] is True
    assert holiday["start"] == f"{diary.holiday.isoformat()}T00:00:00Z"
    assert holiday["end"] == f"{(diary.holiday + timedelta(days=1)).isoformat()}T00:00:00Z"
    assert "timezone" not in holiday
    review = items["review@loom.test"].data
    assert review["organizer"] == "ada@example.com"
    assert review["attendees"] == [
        {"email": "grace@example.com", "name": "Grace Hopper", "role": "req-participant",
         "status": "accepted"},
        {"email": "alan@example.com", "role": "opt-participant", "status": "needs-action"},
    ]  # fmt: skip
    assert (review["status"], review["location"], review["description"]) == (
        "tentative", "Room 3.14", "Bring the drafts.")  # fmt: skip
    assert review["timezone"] == "UTC"


async def test_later_runs_emit_only_what_changed(radicale: Radicale) -> None:
    diary = Diary(radicale.new_calendar())
    account = radicale.account(calendars=[diary.calendar.id])
    h = FetcherHarness(fetch, settings=radicale.settings(account))
    await h.run()
    first = of_type(h.events, RAW)
    (cursor,) = (await cursor_of(h, account.key)).values()
    assert cursor["token"].startswith("http://radicale.org/ns/sync/")
    assert len(cursor["etags"]) == 3

    (again,) = await h.run()
    assert (again.status, again.emitted) == ("ok", 0)
    assert len(h.events) == 6

    edited = diary.modified + timedelta(minutes=30)
    diary.save("weekly@loom.test", diary.weekly("Weekly planning (moved room)", edited))
    diary.save("new@loom.test", ics(*vevent(
        "new@loom.test", f"DTSTART:{utc(diary.review + timedelta(days=2))}",
        "DURATION:PT30M", "SUMMARY:Coffee", modified=edited)))  # fmt: skip
    (third,) = await h.run()
    assert (third.status, third.emitted) == ("ok", 4)
    made = h.events[6:]
    assert set(of_type(made, RAW)) == set(of_type(made, EVENTS)) == {
        "weekly@loom.test", "new@loom.test"}  # fmt: skip
    changed = of_type(made, RAW)["weekly@loom.test"]
    assert changed.id != first["weekly@loom.test"].id  # a new version is a new event
    assert "Weekly planning (moved room)" in changed.data["ical"]
    assert changed.data["etag"] != first["weekly@loom.test"].data["etag"]
    assert changed.time == max(edited, period_start(_now(), 30))

    diary.calendar.get_event_by_uid("holiday@loom.test").delete()
    (fourth,) = await h.run()
    assert (fourth.status, fourth.emitted) == ("ok", 0)  # no calendar type says "gone"
    (cursor,) = (await cursor_of(h, account.key)).values()
    assert sorted(cursor["etags"]) == ["new@loom.test.ics", "review@loom.test.ics",
                                       "weekly@loom.test.ics"]  # fmt: skip


async def test_without_sync_tokens_etags_tell_what_changed(radicale: Radicale) -> None:
    diary = Diary(radicale.new_calendar())
    account = radicale.account(calendars=[diary.calendar.id])
    h = FetcherHarness(fetch, settings=radicale.settings(account, calendar_sync_tokens=False))
    (first,) = await h.run()
    assert (first.status, first.emitted) == ("ok", 6)
    (second,) = await h.run()
    assert second.emitted == 0

    diary.save("review@loom.test", diary.with_attendees().replace("Room 3.14", "Room 2.71"))
    diary.calendar.get_event_by_uid("holiday@loom.test").delete()
    (third,) = await h.run()
    assert third.emitted == 2
    assert set(of_type(h.events[6:], RAW)) == {"review@loom.test"}
    (cursor,) = (await cursor_of(h, account.key)).values()
    assert cursor["token"] is None
    assert sorted(cursor["etags"]) == ["review@loom.test.ics", "weekly@loom.test.ics"]


async def test_a_run_cut_short_resumes_after_its_last_batch(radicale: Radicale) -> None:
    diary = Diary(radicale.new_calendar())
    account = radicale.account(calendars=[diary.calendar.id])
    config = radicale.settings(account, calendar_batch_size=1)
    ctx = FetchContext(fetcher="calendar", settings=config, log=get_logger("test"),
                       account=account.key)  # fmt: skip
    run = fetch(account, {}, ctx)
    batch: Batch = await anext(run)  # one object, then the run stops (a crash, a timeout)
    await run.aclose()
    assert len([e for e in batch.events if e.type == RAW]) == 1
    (state,) = batch.cursor["calendars"].values()
    assert state["token"] is None  # not until every change it covers is sent
    assert len(state["etags"]) == 1

    rest = [b async for b in fetch(account, batch.cursor, ctx)]
    sent = [e.data["event_uid"] for b in rest for e in b.events if e.type == RAW]
    assert len(sent) == 2
    assert batch.events[0].data["event_uid"] not in sent
    (final,) = rest[-1].cursor["calendars"].values()
    assert final["token"].startswith("http://radicale.org/ns/sync/")
    assert len(final["etags"]) == 3


async def test_calendars_are_chosen_by_display_name_or_all(radicale: Radicale) -> None:
    work = radicale.new_calendar("grace", name="Work")
    family = radicale.new_calendar("grace", name="Family")
    work.add_event(ics(*vevent("w@loom.test", "DTSTART:20261201T090000Z", "SUMMARY:Work")))
    family.add_event(ics(*vevent("f@loom.test", "DTSTART:20261202T090000Z", "SUMMARY:Family")))

    only = FetcherHarness(fetch, settings=radicale.settings(
        radicale.account("grace", name="grace-family", calendars=["family"])))  # fmt: skip
    (report,) = await only.run()
    assert (report.account, report.status) == ("grace-family", "ok")
    assert {e.data["calendar_id"] for e in only.events} == {str(family.url)}

    every = FetcherHarness(fetch, settings=radicale.settings(radicale.account("grace")))
    await every.run()
    assert {str(work.url), str(family.url)} <= {e.data["calendar_id"] for e in every.events}

    missing = FetcherHarness(fetch, settings=radicale.settings(
        radicale.account("grace", calendars=["Family", "Holidays"])))  # fmt: skip
    (failed,) = await missing.run()
    assert failed.status == "failed"
    assert "no calendar named ['Holidays']" in (failed.error or "")
    assert "Family" in (failed.error or "")


async def test_a_wrong_password_fails_backs_off_and_never_shows_it(radicale: Radicale) -> None:
    wrong = "not-the-Pa55word"
    account = radicale.account(password=wrong)
    h = FetcherHarness(fetch, settings=radicale.settings(account))
    with capture_logs() as logs:
        (report,) = await h.run()
    assert report.status == "failed"
    assert report.error is not None
    assert "refused the login of 'ada'" in report.error
    assert wrong not in report.error
    assert wrong not in repr(logs)
    assert report.next_attempt_at is not None
    assert report.next_attempt_at > datetime.now(UTC)
    row = await h.cursors.get("calendar", account.key)
    assert (row.failures, row.last_error) == (1, report.error)

    (later,) = await h.run()
    assert later.status == "backing off"
    assert h.events == []


async def test_a_server_that_is_down_fails_only_its_account(radicale: Radicale) -> None:
    diary = Diary(radicale.new_calendar())
    down = radicale.account(name="down", url="http://127.0.0.1:9/", calendars=[])
    up = radicale.account(calendars=[diary.calendar.id])
    h = FetcherHarness(fetch, settings=radicale.settings(down, up, calendar_timeout_seconds=2))
    reports = await h.run()
    assert [(r.account, r.status) for r in reports] == [("down", "failed"),
                                                        ("ada@127.0.0.1", "ok")]  # fmt: skip
    assert "ConnectionError" in (reports[0].error or "")
    assert USERS["ada"] not in (reports[0].error or "")
    assert reports[1].emitted == 6


async def test_the_events_are_what_the_catalog_says(radicale: Radicale) -> None:
    diary = Diary(radicale.new_calendar())
    h = FetcherHarness(fetch, settings=radicale.settings(
        radicale.account(calendars=[diary.calendar.id])))  # fmt: skip
    await h.run()
    for event in h.events:
        assert h.catalog.violations(event.type, event.data) == [], event.data
    holiday = of_type(h.events, EVENTS)["holiday@loom.test"].data
    assert date.fromisoformat(holiday["start"][:10]) == diary.holiday


async def test_a_sync_token_the_server_forgot_lists_all_and_sends_nothing_known(
    radicale: Radicale,
) -> None:
    diary = Diary(radicale.new_calendar())
    account = radicale.account(calendars=[diary.calendar.id])
    h = FetcherHarness(fetch, settings=radicale.settings(account))
    await h.run()
    calendars = await cursor_of(h, account.key)
    (state,) = calendars.values()
    forgotten = {**state, "token": "http://radicale.org/ns/sync/" + "0" * 64}
    await h.cursors.advance("calendar", account.key,
                            {"calendars": {str(diary.calendar.url): forgotten}}, 0)  # fmt: skip
    (report,) = await h.run()
    assert (report.status, report.emitted) == ("ok", 0)
    (state,) = (await cursor_of(h, account.key)).values()
    assert state["token"] != forgotten["token"]
    assert state["token"].startswith("http://radicale.org/ns/sync/")


async def run_at(
    account: CalDavAccount, config: CalendarSettings, cursor: dict[str, Any], now: datetime
) -> tuple[list[Event], dict[str, Any]]:
    """One run of the fetcher at ``now``: what it sent, and the cursor it left."""
    ctx = FetchContext(fetcher="calendar", settings=config, log=get_logger("test"),
                       account=account.key, now=now)  # fmt: skip
    batches = [b async for b in fetch(account, cursor, ctx)]
    return [e for b in batches for e in b.events], batches[-1].cursor if batches else cursor


async def test_a_recurring_object_is_sent_again_once_each_period(radicale: Radicale) -> None:
    calendar = radicale.new_calendar()
    begun = _now() - timedelta(days=3 * 365)
    calendar.add_event(ics(*vevent("open@loom.test", f"DTSTART:{utc(begun)}", "DURATION:PT1H",
                                   "RRULE:FREQ=WEEKLY", modified=begun)))  # fmt: skip
    calendar.add_event(ics(*vevent("over@loom.test", f"DTSTART:{utc(begun)}", "DURATION:PT1H",
                                   f"RRULE:FREQ=WEEKLY;UNTIL={utc(begun + timedelta(days=400))}",
                                   modified=begun)))  # fmt: skip
    calendar.add_event(ics(*vevent("once@loom.test", f"DTSTART:{utc(begun)}", "DURATION:PT1H",
                                   modified=begun)))  # fmt: skip
    account = radicale.account(calendars=[calendar.id])
    config = radicale.settings(account)
    period = period_start(_now(), 30)

    first, cursor = await run_at(account, config, {}, period + timedelta(hours=1))
    assert len(of_type(first, RAW)) == 3
    assert {e.time for e in first} == {period}  # as of the period's start: written long ago
    same, cursor = await run_at(account, config, cursor, period + timedelta(days=29))
    assert same == []  # the same period: nothing again

    later, cursor = await run_at(account, config, cursor, period + timedelta(days=31))
    assert set(of_type(later, RAW)) == set(of_type(later, EVENTS)) == {"open@loom.test"}
    again = of_type(later, RAW)["open@loom.test"]
    assert again.id != of_type(first, RAW)["open@loom.test"].id  # a new event ...
    assert again.time == period + timedelta(days=30)  # ... as of the next period
    assert again.data["fetched_at"] == rfc3339(period + timedelta(days=30))
    assert again.data["etag"] == of_type(first, RAW)["open@loom.test"].data["etag"]
    assert (await run_at(account, config, cursor, period + timedelta(days=32)))[0] == []


async def test_a_cursor_kept_before_refreshes_starts_over(radicale: Radicale) -> None:
    diary = Diary(radicale.new_calendar())
    account = radicale.account(calendars=[diary.calendar.id])
    h = FetcherHarness(fetch, settings=radicale.settings(account))
    await h.run()
    (state,) = (await cursor_of(h, account.key)).values()
    old = {"token": state["token"], "etags": state["etags"]}  # no "refresh"
    await h.cursors.advance("calendar", account.key,
                            {"calendars": {str(diary.calendar.url): old}}, 0)  # fmt: skip
    (report,) = await h.run()
    assert (report.status, report.emitted) == ("ok", 6)
    (state,) = (await cursor_of(h, account.key)).values()
    assert sorted(state["refresh"]) == ["weekly@loom.test.ics"]
