"""Charging sessions when they end, and a summary of each local day when the next begins."""

from __future__ import annotations

from datetime import datetime

import pytest

from tests.functions.power.conftest import PATTERNS, Feed, make_feed, raw


async def charge(feed: Feed, first: float, end: float, level: float, per_minute: float = 1.0,
                 **kw: object) -> float:  # fmt: skip
    """Readings every minute from ``first`` to ``end`` (excluded) while charging."""
    minute = first
    while minute < end:
        await feed.reading(minute, min(100, level), charging=True, **kw)
        level += per_minute
        minute += 1
    return min(100, level)


async def test_a_session_is_reported_once_the_device_is_unplugged(feed: Feed) -> None:
    await feed.reading(0, 30)
    await charge(feed, 1, 41, 30)  # 30 % → 69 % over minutes 1…40
    await feed.reading(41, 69)  # unplugged
    assert feed.sessions() == []  # might be a loose cable
    out = await feed.send(raw(44, 68))
    (session,) = feed.sessions()
    assert session["session_start"] == "2025-11-25T08:01:00+00:00"
    assert session["session_end"] == "2025-11-25T08:40:00+00:00"
    assert session["timestamp"] == session["session_end"]
    assert (session["start_level"], session["end_level"]) == (30, 69)
    assert session["energy_pct"] == pytest.approx(39)
    assert [e.type for e in out] == ["device.state.power.enriched", PATTERNS]


async def test_a_short_unplug_does_not_split_a_session(feed: Feed) -> None:
    await charge(feed, 0, 20, 40)
    await feed.reading(20, 59)  # unplugged for a minute
    await charge(feed, 21, 40, 59)
    for minute in range(40, 45):
        await feed.reading(minute, 77)
    (session,) = feed.sessions()
    assert session["session_start"].endswith("08:00:00+00:00")
    assert session["session_end"].endswith("08:39:00+00:00")
    assert (session["start_level"], session["end_level"]) == (40, 77)
    assert session["energy_pct"] == pytest.approx(37)


async def test_a_long_unplug_makes_two_sessions(feed: Feed) -> None:
    await charge(feed, 0, 10, 40)
    for minute in range(10, 20):
        await feed.reading(minute, 49)
    await charge(feed, 20, 30, 49)
    await feed.reading(30, 58)
    await feed.reading(35, 58)
    first, second = feed.sessions()
    assert (first["start_level"], first["end_level"]) == (40, 49)
    assert (second["start_level"], second["end_level"]) == (49, 58)
    assert first["session_end"] < second["session_start"]


async def test_plugged_in_again_after_a_silence_closes_the_old_session(feed: Feed) -> None:
    await charge(feed, 0, 5, 40)
    await feed.reading(5, 44)  # unplugged, then nothing for half an hour
    await feed.reading(35, 41, charging=True)
    (session,) = feed.sessions()
    assert session["session_end"].endswith("08:04:00+00:00")
    await feed.reading(36, 42, charging=True)
    assert len(feed.sessions()) == 1  # the new one is still under way


async def test_no_merge_time_ends_a_session_at_the_first_unplugged_reading() -> None:
    feed = make_feed(power_session_merge_seconds=0)
    await charge(feed, 0, 5, 40)
    await feed.reading(5, 44)
    assert len(feed.sessions()) == 1


async def test_a_drop_while_plugged_in_is_not_charged_energy(feed: Feed) -> None:
    for minute, level in enumerate((50, 49, 48, 50, 52)):  # a weak charger, then better
        await feed.reading(minute, level, charging=True)
    for minute in (5, 8):
        await feed.reading(minute, 52)
    (session,) = feed.sessions()
    assert session["energy_pct"] == pytest.approx(4)


async def test_the_day_is_summarised_when_the_next_one_begins() -> None:
    feed = make_feed()
    start = datetime.fromisoformat("2025-11-25T20:00:00+01:00")
    # 20:00-22:00 on battery 60 → 48, 22:00-23:00 charging 48 → 100 (capped),
    # 23:00-00:30 on battery again.
    level = 60.0
    for minute in range(0, 120, 10):
        await feed.reading(minute, level, start=start)
        level -= 1
    await charge(feed, 120, 180, 48, start=start)
    for minute in range(180, 271, 10):
        await feed.reading(minute, 100 - (minute - 180) / 30, start=start)
    (day,) = feed.days()
    assert day["day"] == "2025-11-25"
    assert day["session_start"] == "2025-11-25T00:00:00+01:00"
    assert day["session_end"] == day["timestamp"] == "2025-11-25T23:59:59+01:00"
    assert (day["start_level"], day["min_level"], day["max_level"]) == (60, 48, 100)
    assert day["charge_count"] == 1
    assert day["energy_pct"] == pytest.approx(52)
    assert day["minutes_charging"] == pytest.approx(60)
    assert day["minutes_on_battery"] == pytest.approx(180)  # 20:00-22:00 and 23:00-24:00
    (session,) = feed.sessions()
    assert session["session_end"] == "2025-11-25T22:59:00+01:00"


async def test_a_device_that_only_reports_daily_gets_one_summary_per_day(feed: Feed) -> None:
    for day in range(3):
        await feed.reading(day * 24 * 60, 50)
    days = feed.days()
    assert [d["day"] for d in days] == ["2025-11-25", "2025-11-26"]
    assert all(d["minutes_on_battery"] == 0 for d in days)  # too long a silence to count


async def test_the_local_day_follows_the_offset_the_device_wrote(feed: Feed) -> None:
    utc_start = datetime.fromisoformat("2025-11-25T22:30:00+00:00")
    tokyo_start = datetime.fromisoformat("2025-11-26T07:30:00+09:00")  # same instant
    await feed.reading(0, 50, start=utc_start)
    await feed.reading(10, 50, start=tokyo_start)  # already the 26th there
    (day,) = feed.days()
    assert day["day"] == "2025-11-25"


async def test_devices_are_tracked_apart(feed: Feed) -> None:
    for minute in range(0, 30):
        await feed.reading(minute, 40 + minute, charging=True, device="phone")
        await feed.reading(minute, 90 - minute / 2, device="laptop")
    await feed.reading(30, 70, device="phone")
    await feed.reading(33, 70, device="phone")
    (session,) = feed.sessions()
    assert session["device_id"] == "phone"
    laptop = await feed.reading(30, 75, device="laptop")
    assert laptop["charge_rate_pct_per_hour"] == pytest.approx(-30.0, abs=1)
