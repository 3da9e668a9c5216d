"""What a person sees of the calendar function: one enriched event per occurrence, in UTC
with the zone it was written in, recurrences expanded around the time the object is sent
as of with EXDATEs and changed occurrences honoured, attendees; the same occurrence under
the same id and time whichever sending of its version made it; rules that would take too
long and unreadable objects dead-lettered with the reason, and the event loop free
meanwhile."""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from structlog.testing import capture_logs

from functions.calendar.fetcher import RAW, fetch, period_start
from functions.calendar.handler import ENRICHED, handle
from functions.calendar.ical import rfc3339
from functions.calendar.settings import CalendarSettings
from loom.catalog import default_catalog
from loom.runtime.event import Event
from loom.runtime.invoke import PoisonEvent
from loom.store.rows import expired
from loom.store.tables import event_tables
from loom.testing import FetcherHarness, FunctionHarness, assert_emitted
from tests.functions.calendar.conftest import Radicale
from tests.functions.calendar.ics import BERLIN_VTIMEZONE, ics, local, utc, vevent
from tests.functions.calendar.test_fetcher import BERLIN, Diary, run_at

WRITTEN = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)  # when the objects below were saved
CUSTOM_BERLIN = [line.replace("TZID:Europe/Berlin", "TZID:/example.com/Berlin")
                 for line in BERLIN_VTIMEZONE]  # fmt: skip


def raw(
    ical: str,
    *,
    uid: str = "e@loom.test",
    time: datetime = WRITTEN,
    etag: str = '"v1"',
    fetched_at: datetime | None = None,
) -> Event:
    data = {
        "timestamp": time.isoformat().replace("+00:00", "Z"),
        "account": "ada@example.com",
        "calendar_id": "https://dav.example.com/ada/work/",
        "event_uid": uid,
        "etag": etag,
        "ical": ical,
    }
    if fetched_at is not None:
        data["fetched_at"] = fetched_at.isoformat().replace("+00:00", "Z")
    return Event(type=RAW, data=data, time=time, source="/loom/fetchers/calendar")


async def enrich(event: Event, **settings: Any) -> list[dict[str, Any]]:
    harness = FunctionHarness(handle, settings=CalendarSettings(**settings))
    made = await harness.call(event)
    assert {e.type for e in made} <= {ENRICHED}
    return [e.data for e in made]


def starts(found: list[dict[str, Any]]) -> list[str]:
    return [d["start"] for d in found]


async def test_a_weekly_event_keeps_its_wall_time_across_the_dst_change() -> None:
    weekly = ics(*BERLIN_VTIMEZONE, *vevent(
        "weekly@loom.test", "DTSTART;TZID=Europe/Berlin:20261015T090000",
        "DTEND;TZID=Europe/Berlin:20261015T094500", "RRULE:FREQ=WEEKLY;COUNT=4",
        "SUMMARY:Weekly planning"))  # fmt: skip
    found = await enrich(raw(weekly))
    # 09:00 in Berlin is 07:00 UTC in summer time, 08:00 UTC after 25 October
    assert starts(found) == ["2026-10-15T07:00:00Z", "2026-10-22T07:00:00Z",
                             "2026-10-29T08:00:00Z", "2026-11-05T08:00:00Z"]  # fmt: skip
    assert [d["end"][11:] for d in found] == ["07:45:00Z", "07:45:00Z", "08:45:00Z", "08:45:00Z"]
    assert {d["timezone"] for d in found} == {"Europe/Berlin"}
    assert all(d["is_recurring"] and d["duration_minutes"] == 45 for d in found)
    assert [d["recurrence_id"] for d in found] == starts(found)
    assert {d["event_uid"] for d in found} == {"weekly@loom.test"}


async def test_a_zone_defined_only_in_the_object_is_used_and_named() -> None:
    text = ics(*CUSTOM_BERLIN, *vevent(
        "custom@loom.test", "DTSTART;TZID=/example.com/Berlin:20261022T090000",
        "DURATION:PT1H", "RRULE:FREQ=WEEKLY;COUNT=2"))  # fmt: skip
    found = await enrich(raw(text))
    assert starts(found) == ["2026-10-22T07:00:00Z", "2026-10-29T08:00:00Z"]
    assert {d["timezone"] for d in found} == {"/example.com/Berlin"}


async def test_exdate_leaves_an_occurrence_out_and_recurrence_id_moves_one() -> None:
    text = ics(*BERLIN_VTIMEZONE,
        *vevent("standup@loom.test", "DTSTART;TZID=Europe/Berlin:20261102T093000",
                "DTEND;TZID=Europe/Berlin:20261102T094500", "RRULE:FREQ=DAILY;COUNT=5",
                "EXDATE;TZID=Europe/Berlin:20261104T093000", "SUMMARY:Stand-up"),
        *vevent("standup@loom.test", "RECURRENCE-ID;TZID=Europe/Berlin:20261105T093000",
                "DTSTART;TZID=Europe/Berlin:20261105T140000",
                "DTEND;TZID=Europe/Berlin:20261105T143000", "SUMMARY:Stand-up (afternoon)"),
    )  # fmt: skip
    found = await enrich(raw(text))
    assert [(d["start"], d["summary"]) for d in found] == [
        ("2026-11-02T08:30:00Z", "Stand-up"),
        ("2026-11-03T08:30:00Z", "Stand-up"),
        ("2026-11-05T13:00:00Z", "Stand-up (afternoon)"),  # moved; 4 November is left out
        ("2026-11-06T08:30:00Z", "Stand-up"),
    ]
    moved = found[2]
    assert moved["recurrence_id"] == "2026-11-05T08:30:00Z"  # where it was in the series
    assert (moved["end"], moved["duration_minutes"]) == ("2026-11-05T13:30:00Z", 30)


async def test_a_cancelled_occurrence_is_kept_as_cancelled() -> None:
    text = ics(
        *vevent("gym@loom.test", "DTSTART:20261102T170000Z", "DURATION:PT1H",
                "RRULE:FREQ=WEEKLY;COUNT=2", "SUMMARY:Gym"),
        *vevent("gym@loom.test", "RECURRENCE-ID:20261109T170000Z",
                "DTSTART:20261109T170000Z", "DURATION:PT1H", "SUMMARY:Gym",
                "STATUS:CANCELLED"),
    )  # fmt: skip
    found = await enrich(raw(text))
    assert [(d["start"], d["status"]) for d in found] == [
        ("2026-11-02T17:00:00Z", "confirmed"), ("2026-11-09T17:00:00Z", "cancelled")]  # fmt: skip
    assert {d["timezone"] for d in found} == {"UTC"}


async def test_an_all_day_event_is_midnight_utc_without_a_zone() -> None:
    text = ics(*vevent("trip@loom.test", "DTSTART;VALUE=DATE:20261224",
                       "DTEND;VALUE=DATE:20261227", "SUMMARY:Trip",
                       "CATEGORIES:Travel Plans,Family"))  # fmt: skip
    (trip,) = await enrich(raw(text))
    assert (trip["start"], trip["end"]) == ("2026-12-24T00:00:00Z", "2026-12-27T00:00:00Z")
    assert (trip["all_day"], trip["duration_minutes"], trip["is_recurring"]) == (True, 4320, False)
    assert "timezone" not in trip
    assert "recurrence_id" not in trip
    assert trip["category"] == "travel-plans"
    (one_day,) = await enrich(raw(ics(*vevent("bday@loom.test", "DTSTART;VALUE=DATE:20261203",
                                              "SUMMARY:Birthday"))))  # fmt: skip
    assert (one_day["end"], one_day["duration_minutes"]) == ("2026-12-04T00:00:00Z", 1440)


async def test_a_yearly_all_day_event_recurs_on_its_dates() -> None:
    text = ics(*vevent("bday@loom.test", "DTSTART;VALUE=DATE:20201203",
                       "RRULE:FREQ=YEARLY", "SUMMARY:Mum's birthday"))  # fmt: skip
    (found,) = await enrich(raw(text))  # one in [30 days before, 180 days after] WRITTEN
    assert (found["start"], found["all_day"], found["is_recurring"]) == (
        "2026-12-03T00:00:00Z", True, True)  # fmt: skip


async def test_floating_times_are_read_in_the_calendars_zone_or_the_setting() -> None:
    lines = vevent("f@loom.test", "DTSTART:20261201T090000", "DURATION:PT30M")
    (plain,) = await enrich(raw(ics(*lines)))
    assert (plain["start"], "timezone" in plain) == ("2026-12-01T09:00:00Z", False)
    (setting,) = await enrich(raw(ics(*lines)), calendar_floating_timezone="America/New_York")
    assert (setting["start"], "timezone" in setting) == ("2026-12-01T14:00:00Z", False)
    (named,) = await enrich(raw(ics("X-WR-TIMEZONE:Asia/Tokyo", *lines)))
    assert (named["start"], named["timezone"]) == ("2026-12-01T00:00:00Z", "Asia/Tokyo")


async def test_a_rule_without_end_is_expanded_around_the_time_it_is_sent_as_of() -> None:
    text = ics(*vevent("daily@loom.test", "DTSTART:20200101T060000Z", "DURATION:PT15M",
                       "RRULE:FREQ=DAILY", "SUMMARY:Meditate"))  # fmt: skip
    window = {"calendar_expand_past_days": 2, "calendar_expand_future_days": 3,
              "calendar_refresh_days": 1}  # fmt: skip
    found = await enrich(raw(text), **window)
    assert starts(found) == ["2026-09-30T06:00:00Z", "2026-10-01T06:00:00Z",
                             "2026-10-02T06:00:00Z", "2026-10-03T06:00:00Z",
                             "2026-10-04T06:00:00Z"]  # fmt: skip
    later = await enrich(raw(text, fetched_at=WRITTEN + timedelta(days=30)), **window)
    assert starts(later) == ["2026-10-30T06:00:00Z", "2026-10-31T06:00:00Z",
                             "2026-11-01T06:00:00Z", "2026-11-02T06:00:00Z",
                             "2026-11-03T06:00:00Z"]  # fmt: skip


async def test_a_rule_repeating_every_minute_stops_at_the_limit() -> None:
    text = ics(*vevent("tick@loom.test", "DTSTART:20261001T000000Z", "RRULE:FREQ=MINUTELY"))
    with capture_logs() as logs:
        found = await enrich(raw(text), calendar_max_occurrences=50)
    assert len(found) == 50
    assert found[-1]["start"] == "2026-10-01T00:49:00Z"
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == [
        "calendar.occurrences_capped"]  # fmt: skip


async def test_attendees_organizer_and_text_are_kept() -> None:
    text = ics(*vevent(
        "review@loom.test", "DTSTART:20261201T140000Z", "DTEND:20261201T150000Z",
        "SUMMARY:Design review", "LOCATION:Room 3.14", "DESCRIPTION:Bring the drafts.",
        "STATUS:TENTATIVE", "ORGANIZER;CN=Ada:mailto:ada@example.com",
        "ATTENDEE;CN=Grace Hopper;ROLE=CHAIR;PARTSTAT=DECLINED:mailto:grace@example.com",
        "ATTENDEE;CUTYPE=ROOM;CN=Room 3.14:urn:uuid:room-314",  # no address: only counted
        "ATTENDEE;PARTSTAT=X-UNKNOWN:MAILTO:alan@example.com"))  # fmt: skip
    (review,) = await enrich(raw(text))
    assert review["attendees"] == [
        {"email": "grace@example.com", "name": "Grace Hopper", "role": "chair",
         "status": "declined"},
        {"email": "alan@example.com"},
    ]  # fmt: skip
    assert review["attendee_count"] == 3
    assert (review["organizer"], review["location"], review["description"], review["status"]) \
        == ("ada@example.com", "Room 3.14", "Bring the drafts.", "tentative")  # fmt: skip


async def test_ids_are_the_same_each_time_and_one_per_occurrence() -> None:
    event = raw(ics(*vevent("w@loom.test", "DTSTART:20261001T080000Z",
                            "RRULE:FREQ=WEEKLY;COUNT=3")))  # fmt: skip
    harness = FunctionHarness(handle, settings=CalendarSettings())
    first, again = await harness.call(event), await harness.call(event)
    assert [(e.id, e.time) for e in first] == [(e.id, e.time) for e in again]
    assert len({e.id for e in first}) == 3
    assert {e.data["derived_from"]["id"] for e in first} == {event.id}
    # known since 180 days (LOOM_CALENDAR_EXPAND_FUTURE_DAYS) before each starts
    assert [e.time for e in first] == [
        datetime.fromisoformat(e.data["start"]) - timedelta(days=180) for e in first]  # fmt: skip
    assert [e.data["timestamp"] for e in first] == [rfc3339(e.time) for e in first]


async def test_an_occurrence_is_one_event_whichever_sending_of_its_version_made_it() -> None:
    text = ics(*vevent("w@loom.test", "DTSTART:20200106T080000Z", "DURATION:PT1H",
                       "RRULE:FREQ=WEEKLY", modified=datetime(2020, 1, 2, tzinfo=UTC)))  # fmt: skip
    harness = FunctionHarness(handle, settings=CalendarSettings())
    sendings = [WRITTEN + timedelta(days=30 * n) for n in range(3)]
    sent = [raw(text, fetched_at=at, time=at) for at in sendings]
    made = [await harness.call(event) for event in sent]
    assert len({e.id for e in sent}) == 3  # three sendings (refreshes) of one version
    by_start = [{e.data["start"]: e for e in one} for one in made]
    for before, after in itertools.pairwise(by_start):
        both = set(before) & set(after)
        assert len(both) > 20  # the windows overlap ...
        for start in both:  # ... and what they share is the same event: stored once
            old, new = before[start], after[start]
            assert (old.id, old.source, old.time) == (new.id, new.source, new.time)
            assert {**old.data, "derived_from": None} == {**new.data, "derived_from": None}
        assert max(after) > max(before)  # and each sending reaches further
    assert all(e.time <= sending.time for one, sending in zip(made, sent, strict=True)
               for e in one)  # fmt: skip


async def test_an_edited_series_makes_new_occurrences() -> None:
    lines = ["DTSTART:20261005T080000Z", "DURATION:PT1H", "RRULE:FREQ=WEEKLY;COUNT=30"]
    old = raw(ics(*vevent("w@loom.test", *lines, "SUMMARY:Sync", modified=WRITTEN)))
    edited = raw(ics(*vevent("w@loom.test", *lines, "SUMMARY:Sync (room 2)",
                             modified=WRITTEN + timedelta(days=1))),
                 etag='"v2"', time=WRITTEN + timedelta(days=1))  # fmt: skip
    harness = FunctionHarness(handle, settings=CalendarSettings())
    before, after = await harness.call(old), await harness.call(edited)
    assert [e.data["start"] for e in before] == [e.data["start"] for e in after]
    assert not {e.id for e in before} & {e.id for e in after}  # the edit is kept beside it
    assert {e.data["summary"] for e in after} == {"Sync (room 2)"}


@pytest.mark.parametrize(
    ("ical", "reason"),
    [
        (ics("BEGIN:VEVENT", "UID:x@loom.test", "DTSTART:not-a-date", "END:VEVENT"),
         "'x@loom.test' has broken DTSTART"),
        (ics(*vevent("x@loom.test", "SUMMARY:When?")), "'x@loom.test' has no DTSTART"),
        (ics(*vevent("x@loom.test", "DTSTART:20261001T080000Z", "RRULE:FREQ=WEEKLY;BYDAY=XX")),
         "'x@loom.test' has broken RRULE"),
        ("BEGIN:VCALENDAR\nthis is not iCalendar\nEND:VCALENDAR\n", "not an iCalendar object"),
        (ics("BEGIN:VEVENT", "UID:x@loom.test", "DTSTART:20261001T080000Z"),
         "not an iCalendar object"),
    ],
)  # fmt: skip
async def test_an_unreadable_object_is_a_dead_letter_saying_why(ical: str, reason: str) -> None:
    harness = FunctionHarness(handle, settings=CalendarSettings())
    with pytest.raises(PoisonEvent, match=r"calendar object 'e@loom\.test'") as caught:
        await harness.call(raw(ical))
    assert reason in str(caught.value)


async def test_an_object_without_events_makes_nothing() -> None:
    todo = ics("BEGIN:VTODO", "UID:t@loom.test", "SUMMARY:Taxes", "END:VTODO")
    assert await enrich(raw(todo)) == []


async def test_the_golden_example_is_enriched() -> None:
    harness = FunctionHarness(handle, settings=CalendarSettings())
    made = await harness.call_example(RAW, "recurring-meeting")
    found = assert_emitted(made, ENRICHED)
    berlin = ZoneInfo("Europe/Berlin")
    for occurrence in found:
        start = datetime.fromisoformat(occurrence.data["start"]).astimezone(berlin)
        assert (start.weekday(), start.hour, occurrence.data["timezone"]) == (3, 9, "Europe/Berlin")


async def test_fetched_events_are_enriched(radicale: Radicale) -> None:
    diary = Diary(radicale.new_calendar())
    fetched = FetcherHarness(fetch, settings=radicale.settings(
        radicale.account(calendars=[diary.calendar.id])))  # fmt: skip
    await fetched.run()
    harness = FunctionHarness(handle, settings=CalendarSettings())
    by_uid: dict[str, list[dict[str, Any]]] = {}
    for event in fetched.events:
        if event.type == RAW:
            made = await harness.call(event)
            assert {e.data["derived_from"]["id"] for e in made} == {event.id}
            by_uid[event.data["event_uid"]] = [e.data for e in made]

    berlin = ZoneInfo("Europe/Berlin")
    weekly = by_uid["weekly@loom.test"]
    expected = [diary.weekly_first.replace(tzinfo=None) + timedelta(weeks=n) for n in range(6)]
    assert [datetime.fromisoformat(d["start"]) for d in weekly] == [
        w.replace(tzinfo=berlin).astimezone(UTC) for w in expected]  # fmt: skip
    assert {(d["timezone"], d["duration_minutes"], d["is_recurring"]) for d in weekly} == {
        ("Europe/Berlin", 45, True)}  # fmt: skip

    (holiday,) = by_uid["holiday@loom.test"]
    assert (holiday["start"], holiday["all_day"], holiday["duration_minutes"]) == (
        f"{diary.holiday.isoformat()}T00:00:00Z", True, 1440)  # fmt: skip

    (review,) = by_uid["review@loom.test"]
    assert review["attendee_count"] == 2
    assert [(a["email"], a.get("status")) for a in review["attendees"]] == [
        ("grace@example.com", "accepted"), ("alan@example.com", "needs-action")]  # fmt: skip
    assert (review["organizer"], review["status"], review["location"]) == (
        "ada@example.com", "tentative", "Room 3.14")  # fmt: skip
    assert datetime.fromisoformat(review["start"]) == diary.review


async def test_a_rule_since_1970_is_expanded_over_the_window_alone() -> None:
    text = ics(*vevent("d@loom.test", "DTSTART:19700101T060000Z", "DURATION:PT15M",
                       "RRULE:FREQ=DAILY", "SUMMARY:Stretch"))  # fmt: skip
    found = await enrich(raw(text))  # [30 days before, 180 days after] WRITTEN
    assert (found[0]["start"], found[-1]["start"]) == (
        "2026-09-02T06:00:00Z", "2027-03-30T06:00:00Z")  # fmt: skip
    assert len(found) == 210


@pytest.mark.parametrize(
    "rule", ["FREQ=SECONDLY", "FREQ=HOURLY", "FREQ=DAILY;BYHOUR=8,9,10,11,12,13,14,15,16,17"]
)
async def test_a_rule_too_dense_to_walk_to_the_window_is_a_dead_letter(rule: str) -> None:
    text = ics(*vevent("x@loom.test", "DTSTART:19700101T000000Z", f"RRULE:{rule}"))
    harness = FunctionHarness(handle, settings=CalendarSettings())
    with pytest.raises(PoisonEvent) as caught:
        await harness.call(raw(text))
    said = re.search(
        rf"its rule '{re.escape(rule)}' from 1970-01-01 00:00 UTC would take ([0-9,]+) steps "
        r"to reach the window from 2026-09-01 \(at most 200,000 are taken\): not expanded",
        str(caught.value),
    )
    assert said is not None, caught.value
    assert int(said[1].replace(",", "")) > 200_000


async def test_a_dense_rule_begun_in_the_window_is_expanded_as_far_as_the_steps_allow() -> None:
    text = ics(*vevent("s@loom.test", "DTSTART:20261001T000000Z", "RRULE:FREQ=SECONDLY"))
    found = await enrich(raw(text), calendar_max_occurrences=3, calendar_max_rule_steps=1000)
    assert starts(found) == ["2026-10-01T00:00:00Z", "2026-10-01T00:00:01Z",
                             "2026-10-01T00:00:02Z"]  # fmt: skip


@pytest.mark.parametrize(
    "rule", ["FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30", "FREQ=HOURLY;COUNT=3;BYSETPOS=2"]
)
async def test_a_rule_that_never_matches_again_is_stopped_in_time(rule: str) -> None:
    text = ics(*vevent("x@loom.test", "DTSTART:20200101T000000Z", f"RRULE:{rule}"))
    settings = CalendarSettings(calendar_expand_timeout_seconds=0.5)
    started = time.monotonic()
    with pytest.raises(PoisonEvent, match=r"expanding its recurrence took over 0\.5 s: stopped"):
        await FunctionHarness(handle, settings=settings).call(raw(text))
    assert time.monotonic() - started < 5


async def test_the_event_loop_runs_on_while_a_series_is_expanded() -> None:
    text = ics(*vevent("h@loom.test", "DTSTART:20100101T000000Z", "RRULE:FREQ=HOURLY"))
    harness = FunctionHarness(handle, settings=CalendarSettings())
    ticks: list[float] = []

    async def tick() -> None:
        while len(ticks) < 10_000:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.005)

    ticker = asyncio.create_task(tick())
    started = time.monotonic()
    made = await harness.call(raw(text))
    took = time.monotonic() - started
    ticker.cancel()
    assert len(made) == 1000  # the limit
    assert took > 0.2, "too quick to tell"
    assert max(b - a for a, b in itertools.pairwise(ticks)) < took / 2


async def test_a_series_begun_three_years_ago_keeps_its_current_and_upcoming_occurrences(
    radicale: Radicale,
) -> None:
    calendar = radicale.new_calendar()
    now = datetime.now(UTC).replace(microsecond=0)
    begun = now - timedelta(days=3 * 365)
    monday = (begun - timedelta(days=begun.weekday())).astimezone(BERLIN).replace(
        hour=10, minute=0, second=0)  # fmt: skip
    calendar.add_event(ics(*BERLIN_VTIMEZONE, *vevent(
        "one-on-one@loom.test", f"DTSTART;TZID=Europe/Berlin:{local(monday)}",
        "DURATION:PT30M", "RRULE:FREQ=WEEKLY", "SUMMARY:1:1", modified=begun)))  # fmt: skip
    fetched = FetcherHarness(fetch, settings=radicale.settings(
        radicale.account(calendars=[calendar.id])))  # fmt: skip
    await fetched.run()
    (sent,) = [e for e in fetched.events if e.type == RAW]
    assert sent.data["last_modified"] == rfc3339(begun)
    made = await FunctionHarness(handle, settings=CalendarSettings()).call(sent)

    tables = event_tables(default_catalog())  # the store's own rule: kept, not dropped
    for event in [*fetched.events, *made]:  # (and one more than a day ahead is refused)
        assert not expired(event, tables[event.type], datetime.now(UTC)), event.type
    begins = sorted(datetime.fromisoformat(e.data["start"]) for e in made)
    assert any(now - timedelta(days=7) < b <= now for b in begins)  # this week's
    assert any(now < b <= now + timedelta(days=7) for b in begins)  # next week's
    assert begins[-1] > now + timedelta(days=140)
    assert {b.astimezone(BERLIN).strftime("%a %H:%M") for b in begins} == {"Mon 10:00"}


async def test_a_series_sent_again_reaches_further_and_makes_no_occurrence_twice(
    radicale: Radicale,
) -> None:
    calendar = radicale.new_calendar()
    begun = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3 * 365)
    calendar.add_event(ics(*vevent("open@loom.test", f"DTSTART:{utc(begun)}", "DURATION:PT1H",
                                   "RRULE:FREQ=WEEKLY", modified=begun)))  # fmt: skip
    account = radicale.account(calendars=[calendar.id])
    config = radicale.settings(account)
    period = period_start(datetime.now(UTC), 30)
    first, cursor = await run_at(account, config, {}, period + timedelta(hours=1))
    later, _ = await run_at(account, config, cursor, period + timedelta(days=31))
    harness = FunctionHarness(handle, settings=CalendarSettings())
    made = [await harness.call(e) for e in (*first, *later) if e.type == RAW]
    assert len(made) == 2

    rows: dict[tuple[str, str, datetime], dict[str, Any]] = {}  # as the store keys them
    for event in made[0] + made[1]:
        rows.setdefault((event.source, event.id, event.time), event.data)
    by_start: dict[str, set[tuple[str, str, datetime]]] = {}
    for key, data in rows.items():
        by_start.setdefault(data["start"], set()).add(key)
    assert all(len(keys) == 1 for keys in by_start.values())  # each occurrence stored once
    reach = [max(datetime.fromisoformat(e.data["start"]) for e in one) for one in made]
    assert reach[1] - reach[0] >= timedelta(days=28)
    tables = event_tables(default_catalog())
    sent_at = period + timedelta(days=31)
    assert not any(expired(e, tables[ENRICHED], sent_at) for e in made[1])
