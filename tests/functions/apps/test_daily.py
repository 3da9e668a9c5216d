"""Daily app usage: one summary per device and local day, made when the device's next local
day begins, with sessions across midnight split between the days."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from typing import Any

from loom.catalog import default_catalog
from loom.runtime.event import Event
from tests.functions.apps.timeline import (
    APP,
    DAILY,
    app,
    days,
    feed,
    flush,
    harness,
    received,
    sessions,
    system,
)


def local(when: str, kind: str, package: str | None = None, device: str = "pixel",
          **data: Any) -> Event:  # fmt: skip
    """An app event (with ``package``) or a system event at ``when`` (RFC 3339, any offset)."""
    base = system(0, kind, device) if package is None else app(0, kind, package, device, **data)
    moment = datetime.fromisoformat(when)
    return received(Event(type=base.type, data={**base.data, "timestamp": when},
                          id=f"{base.type}|{device}|{when}|{kind}|{package}",
                          source=base.source, device_id=device),
                    moment + timedelta(seconds=1))  # fmt: skip


def local_flush(when: str, device: str = "pixel") -> list[Event]:
    """Both inputs move on to ``when``: what came before it is applied (not yet what is at
    ``when``: the other input may still have something at that instant)."""
    return [local(when, "power_connected", device=device),
            local(when, "terminate", "flush", device=device)]  # fmt: skip


def after(when: str) -> list[Event]:
    """Both inputs move on to ``when`` and a second past it: what is at ``when`` is applied."""
    moment = datetime.fromisoformat(when) + timedelta(seconds=1)
    return [*local_flush(when), *local_flush(moment.isoformat())]


def apps_of(day: Event) -> list[tuple[str, float, int, int]]:
    return [(a["app_identifier"], a["foreground_seconds"], a["sessions"], a["launches"])
            for a in day.data["apps"]]  # fmt: skip


# A day of one phone in Berlin (+01:00): three pickups, Chrome twice, Maps, Signal.
DAY_ONE = [
    local("2026-11-25T08:00:00+01:00", "screen_on"),
    local("2026-11-25T08:00:30+01:00", "device_unlock"),
    local("2026-11-25T08:00:30+01:00", "user_present"),  # the same unlock, told twice
    local("2026-11-25T08:01:00+01:00", "launch", "com.android.chrome", app_name="Chrome"),
    local("2026-11-25T08:01:00+01:00", "foreground", "com.android.chrome"),
    local("2026-11-25T08:11:00+01:00", "background", "com.android.chrome"),
    local("2026-11-25T08:12:00+01:00", "foreground", "com.google.android.apps.maps"),
    local("2026-11-25T08:15:00+01:00", "background", "com.google.android.apps.maps"),
    local("2026-11-25T08:20:00+01:00", "screen_off"),
    local("2026-11-25T08:20:00+01:00", "device_lock"),
    local("2026-11-25T13:00:00+01:00", "screen_on"),
    local("2026-11-25T13:00:10+01:00", "device_unlock"),
    local("2026-11-25T13:00:20+01:00", "foreground", "com.android.chrome"),
    local("2026-11-25T13:05:20+01:00", "foreground", "org.thoughtcrime.securesms"),
    local("2026-11-25T13:07:20+01:00", "background", "org.thoughtcrime.securesms"),
    local("2026-11-25T13:10:00+01:00", "screen_off"),
    local("2026-11-25T13:10:00+01:00", "device_lock"),
]
EXPECTED_APPS = [
    ("com.android.chrome", 900.0, 2, 1),
    ("com.google.android.apps.maps", 180.0, 1, 0),
    ("org.thoughtcrime.securesms", 120.0, 1, 0),
]


async def test_a_day_is_summed_up_when_the_next_local_day_begins() -> None:
    h = harness()
    made = await feed(h, [*DAY_ONE, *local_flush("2026-11-25T23:59:00+01:00")])
    assert len(sessions(made)) == 4
    assert days(made) == []  # the day is not over yet
    assert days(await feed(h, local_flush("2026-11-26T00:01:00+01:00"))) == []
    made = await feed(h, after("2026-11-26T00:01:00+01:00"))
    (day,) = days(made)
    assert apps_of(day) == EXPECTED_APPS
    assert day.data["apps"][0]["app_name"] == "Chrome"
    assert day.data["apps"][1]["app_name"] == "com.google.android.apps.maps"  # no name sent
    assert day.data["date"] == "2026-11-25"
    assert day.data["utc_offset"] == "+01:00"
    assert day.data["timestamp"] == "2026-11-25T23:59:59+01:00"
    assert day.data["total_foreground_seconds"] == 1200.0
    assert day.data["sessions"] == 4
    assert day.data["unlocks"] == 2
    assert day.data["screen_on_seconds"] == 20 * 60 + 10 * 60
    assert day.device_id == "pixel"
    assert day.source == "/loom/functions/apps"
    assert day.time == datetime.fromisoformat("2026-11-25T23:59:59+01:00")
    # closed by the first event of the 26th applied (at one instant, endings go first)
    assert day.data["derived_from"] == {
        "type": APP, "source": "/devices/pixel",
        "id": f"{APP}|pixel|2026-11-26T00:01:00+01:00|terminate|flush"}  # fmt: skip
    assert default_catalog().errors(DAILY, day.data) == []
    # the state keeps the open day only (nothing in it yet)
    usage = (await h.state.get("pixel"))["usage"]
    assert usage["days"] == {}
    assert usage["day"] == (day.time.date() - date(1970, 1, 1)).days + 1


async def test_a_device_without_lock_or_screen_events_has_no_unlock_or_screen_counts() -> None:
    made = await feed(harness(apps_reorder_seconds=0), [
        app(0, "foreground", "code"), app(60, "background", "code"),
        app(24 * 60, "foreground", "code"), app(24 * 60 + 1, "background", "code")])  # fmt: skip
    (day,) = days(made)
    assert "unlocks" not in day.data
    assert "screen_on_seconds" not in day.data
    assert day.data["date"] == "2026-11-25"
    assert day.data["utc_offset"] == "+00:00"
    assert apps_of(day) == [("code", 3600.0, 1, 0)]


async def test_a_session_across_midnight_is_split_between_the_two_days() -> None:
    made = await feed(harness(), [
        local("2026-11-25T23:50:00+01:00", "launch", "com.android.chrome"),
        local("2026-11-25T23:50:00+01:00", "foreground", "com.android.chrome"),
        local("2026-11-26T00:10:00.250+01:00", "background", "com.android.chrome"),
        *local_flush("2026-11-26T00:20:00+01:00"), *after("2026-11-27T08:00:00+01:00"),
    ])  # fmt: skip
    (session,) = [s for s in sessions(made) if s.data["app_identifier"] != "flush"]
    first, second = days(made)
    assert (first.data["date"], second.data["date"]) == ("2026-11-25", "2026-11-26")
    assert apps_of(first) == [("com.android.chrome", 600.0, 1, 1)]
    assert apps_of(second) == [("com.android.chrome", 600.25, 1, 0)]  # launched the day before
    assert (
        first.data["total_foreground_seconds"] + second.data["total_foreground_seconds"]
        == (session.data["foreground_seconds"])
    )


async def test_a_session_still_open_when_the_day_closes_is_split_too() -> None:
    # The charger is plugged in at 00:05 (both inputs past midnight): the 25th closes while
    # Chrome is still at the front; it goes on until 00:30.
    made = await feed(harness(), [
        local("2026-11-25T23:50:00+01:00", "foreground", "com.android.chrome"),
        *local_flush("2026-11-26T00:05:00+01:00"),
        local("2026-11-26T00:30:00+01:00", "background", "com.android.chrome"),
        *after("2026-11-27T00:05:00+01:00"),
    ])  # fmt: skip
    first, second = days(made)
    assert apps_of(first) == [("com.android.chrome", 600.0, 1, 0)]
    assert apps_of(second) == [("com.android.chrome", 1800.0, 1, 0)]
    chrome = [s for s in sessions(made) if s.data["app_identifier"] == "com.android.chrome"]
    assert [s.data["foreground_seconds"] for s in chrome] == [2400.0]


async def test_a_missed_foreground_reaching_back_over_midnight_is_split() -> None:
    made = await feed(harness(), [
        local("2026-11-25T22:00:00+01:00", "screen_on"),
        local("2026-11-26T00:05:00+01:00", "background", "maps", duration_seconds=600),
        *local_flush("2026-11-26T00:06:00+01:00"), *after("2026-11-27T00:06:00+01:00"),
    ])  # fmt: skip
    first, second = days(made)
    assert apps_of(first) == [("maps", 300.0, 1, 0)]
    assert apps_of(second) == [("maps", 300.0, 1, 0)]


async def test_days_follow_the_device_offset_and_quiet_days_make_no_summary() -> None:
    made = await feed(harness(apps_reorder_seconds=0), [
        local("2026-11-25T23:00:00-05:00", "foreground", "code"),  # the 26th in UTC
        local("2026-11-25T23:30:00-05:00", "background", "code"),
        local("2026-11-28T09:00:00-05:00", "foreground", "code"),
        local("2026-11-28T09:01:00-05:00", "background", "code"),
    ])  # fmt: skip
    (day,) = days(made)
    assert (day.data["date"], day.data["utc_offset"]) == ("2026-11-25", "-05:00")
    assert day.data["timestamp"] == "2026-11-25T23:59:59-05:00"
    assert apps_of(day) == [("code", 1800.0, 1, 0)]


def _interleave(rng: random.Random, first: list[Event], second: list[Event]) -> list[Event]:
    a, b, out = list(first), list(second), []
    while a or b:
        take = a if (a and (not b or rng.random() < 0.5)) else b
        out.append(take.pop(0))
    return out


async def test_a_day_has_one_id_and_one_summary_however_the_inputs_interleave() -> None:
    events = [*DAY_ONE, *after("2026-11-26T07:00:00+01:00")]
    apps = [e for e in events if e.type == APP]
    systems = [e for e in events if e.type != APP]
    orders = [
        events,
        apps + systems,
        systems + apps,
        *(_interleave(random.Random(seed), apps, systems) for seed in range(6)),
    ]
    made = [days(await feed(harness(apps_reorder_seconds=86_400), order)) for order in orders]
    assert all(len(summaries) == 1 for summaries in made)
    assert len({(d.id, repr(d.data)) for (d,) in made}) == 1


async def test_whichever_event_closes_the_day_the_id_is_the_same() -> None:
    by_app = days(await feed(harness(apps_reorder_seconds=0), [
        *DAY_ONE, local("2026-11-26T08:00:00+01:00", "foreground", "maps"),
        local("2026-11-26T08:01:00+01:00", "background", "maps")]))  # fmt: skip
    by_screen = days(await feed(harness(apps_reorder_seconds=0), [
        *DAY_ONE, local("2026-11-26T07:00:00+01:00", "screen_on"),
        local("2026-11-26T07:01:00+01:00", "screen_off")]))  # fmt: skip
    assert [d.id for d in by_app] == [d.id for d in by_screen]
    assert by_app[0].data["derived_from"] != by_screen[0].data["derived_from"]
    assert apps_of(by_app[0]) == apps_of(by_screen[0]) == EXPECTED_APPS
    other_device = days(await feed(harness(apps_reorder_seconds=0), [
        local(e.data["timestamp"], e.data["event_type"], e.data.get("app_identifier"), "tab")
        for e in [*DAY_ONE, local("2026-11-26T07:00:00+01:00", "screen_on"),
                  local("2026-11-26T07:01:00+01:00", "screen_off")]]))  # fmt: skip
    assert other_device[0].id != by_app[0].id


async def test_the_closing_event_redelivered_makes_the_same_summary_again() -> None:
    h = harness()
    await feed(h, [*DAY_ONE, *local_flush("2026-11-26T00:01:00+01:00"),
                   local("2026-11-26T00:02:00+01:00", "power_connected")])  # fmt: skip
    closing = local("2026-11-26T00:02:00+01:00", "terminate", "flush")  # applies 00:01
    first = await h.call(closing)
    state = await h.state.get("pixel")
    again = await h.call(closing)  # its reply was lost
    assert len(days(first)) == 1
    assert [(e.id, e.data) for e in again] == [(e.id, e.data) for e in first]
    assert await h.state.get("pixel") == state
    # and again after the other input moved on
    await h.call(local("2026-11-26T00:03:00+01:00", "screen_on"))
    assert [(e.id, e.data) for e in await h.call(closing)] == [(e.id, e.data) for e in first]


async def test_a_late_event_for_a_closed_day_changes_nothing() -> None:
    h = harness(apps_reorder_seconds=300)
    made = await feed(h, [*DAY_ONE, *after("2026-11-26T08:00:00+01:00")])
    (closed,) = days(made)
    before = (await h.state.get("pixel"))["usage"]
    late = [local("2026-11-25T21:00:00+01:00", "foreground", "late.app"),
            local("2026-11-25T21:30:00+01:00", "background", "late.app", duration_seconds=1800),
            local("2026-11-25T21:40:00+01:00", "device_unlock")]  # fmt: skip
    assert await feed(h, late) == []
    assert (await h.state.get("pixel"))["usage"] == before
    made = await feed(h, [local("2026-11-26T08:59:00+01:00", "screen_on"),
                          local("2026-11-26T08:59:00+01:00", "device_unlock"),
                          local("2026-11-26T09:00:00+01:00", "foreground", "maps"),
                          local("2026-11-26T09:10:00+01:00", "background", "maps"),
                          *after("2026-11-27T09:00:00+01:00")])  # fmt: skip
    (next_day,) = days(made)
    assert next_day.data["date"] == "2026-11-26"
    assert apps_of(next_day) == [("maps", 600.0, 1, 0)]
    assert next_day.data["unlocks"] == 1
    assert next_day.id != closed.id


async def test_days_are_kept_apart_per_device() -> None:
    made = await feed(harness(apps_reorder_seconds=0), [
        app(0, "foreground", "a", device="one"), app(0, "foreground", "b", device="two"),
        app(10, "background", "a", device="one"), app(20, "background", "b", device="two"),
        *flush(24 * 60, "one"), *flush(24 * 60, "two"), *flush(24 * 60 + 1, "one"),
        *flush(24 * 60 + 1, "two")])  # fmt: skip
    assert sorted((d.device_id, apps_of(d)[0][:2]) for d in days(made)) == [
        ("one", ("a", 600.0)), ("two", ("b", 1200.0))]  # fmt: skip


async def test_a_day_lists_at_most_500_apps_and_counts_all_in_its_totals() -> None:
    events = []
    for n in range(520):
        events += [app(n, "foreground", f"app.{n:03d}"), app(n + 0.5 + n / 10_000,
                   "foreground", "top"), app(n + 0.9, "background", "top")]  # fmt: skip
    made = await feed(harness(apps_reorder_seconds=0), [*events, *flush(24 * 60),
                                                        *flush(24 * 60 + 1)])  # fmt: skip
    (day,) = days(made)
    assert len(day.data["apps"]) == 500
    assert day.data["apps"][0]["app_identifier"] == "top"
    assert day.data["sessions"] == 1040
    fg = sum(s.data["foreground_seconds"] for s in sessions(made) if s.data["app_identifier"]
             != "flush")  # fmt: skip
    assert abs(day.data["total_foreground_seconds"] - fg) < 0.01
    assert default_catalog().errors(DAILY, day.data) == []
