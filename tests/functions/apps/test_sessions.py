"""App sessions as a user sees them: how long each app was used, screen-off time left out."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from loom.runtime.invoke import PoisonEvent
from loom.testing import assert_emitted, example_event
from tests.functions.apps.timeline import (
    ENRICHED,
    app,
    feed,
    flush,
    harness,
    iso,
    received,
    sessions,
    summary,
    system,
)


async def test_foreground_then_background_is_one_session_with_its_duration() -> None:
    h = harness()
    made = await feed(h, [system(0, "screen_on"), app(1, "launch", "com.android.chrome",
                          app_name="Chrome"), app(1, "foreground", "com.android.chrome"),
                          app(13.5, "background", "com.android.chrome"), *flush(20)])  # fmt: skip
    (session,) = assert_emitted(made, ENRICHED, count=1)
    assert summary([session]) == [
        ("com.android.chrome", iso(1), iso(13.5), 750.0, 750.0, 1, "background")
    ]
    assert session.data["app_name"] == "Chrome"
    assert session.data["timestamp"] == session.data["session_end"]
    assert session.data["derived_from"]["id"] == "app-pixel-1-launch-com.android.chrome"
    assert session.source == "/loom/functions/apps"
    assert session.device_id == "pixel"


async def test_launches_of_the_open_app_are_counted_in_its_session() -> None:
    made = await feed(harness(), [
        app(0, "launch", "maps"), app(0, "foreground", "maps"), app(5, "launch", "maps"),
        app(9, "background", "maps"), *flush(10)])  # fmt: skip
    assert summary(made) == [("maps", iso(0), iso(9), 540.0, 540.0, 2, "background")]


async def test_a_missing_background_ends_the_session_when_the_next_app_comes_to_the_front() -> None:
    made = await feed(harness(), [
        app(0, "foreground", "chrome"), app(4, "foreground", "signal"),
        app(6, "foreground", "maps"), app(7, "background", "maps"), *flush(10)])  # fmt: skip
    assert summary(made) == [
        ("chrome", iso(0), iso(4), 240.0, 240.0, 0, "background"),
        ("signal", iso(4), iso(6), 120.0, 120.0, 0, "background"),
        ("maps", iso(6), iso(7), 60.0, 60.0, 0, "background"),
    ]


async def test_terminate_and_crash_end_the_open_app_but_not_another_one() -> None:
    made = await feed(harness(), [
        app(0, "foreground", "chrome"), app(1, "terminate", "signal"),  # swiped away: goes on
        app(2, "crash", "chrome"), app(3, "foreground", "maps"), app(5, "terminate", "maps"),
        *flush(10)])  # fmt: skip
    assert summary(made) == [
        ("chrome", iso(0), iso(2), 120.0, 120.0, 0, "crash"),
        ("maps", iso(3), iso(5), 120.0, 120.0, 0, "terminate"),
    ]


async def test_screen_off_or_lock_ends_the_open_session_there() -> None:
    made = await feed(harness(apps_resume_after_unlock=False), [
        app(0, "foreground", "chrome"), system(10, "screen_off"), system(10.1, "device_lock"),
        system(40, "screen_on"), system(40.2, "device_unlock"),
        app(41, "foreground", "signal"), system(45, "device_lock"), *flush(50)])  # fmt: skip
    assert summary(made) == [
        ("chrome", iso(0), iso(10), 600.0, 600.0, 0, "screen_off"),
        ("signal", iso(41), iso(45), 240.0, 240.0, 0, "screen_off"),
    ]


async def test_time_behind_the_lock_screen_is_not_counted() -> None:
    # The app came to the front while the phone was still locked (an alarm, a call, or
    # Android resuming it just before the unlock): only the unlocked time counts.
    made = await feed(harness(), [
        system(0, "screen_off"), system(0, "device_lock"), system(30, "screen_on"),
        app(30.5, "foreground", "clock"), system(32, "device_unlock"),
        app(35, "background", "clock"), *flush(40)])  # fmt: skip
    assert summary(made) == [("clock", iso(30.5), iso(35), 270.0, 180.0, 0, "background")]


async def test_an_app_only_seen_behind_the_lock_screen_makes_no_session() -> None:
    made = await feed(harness(), [
        system(0, "screen_off"), system(0, "device_lock"), system(30, "screen_on"),
        app(30.5, "foreground", "clock"), system(31, "screen_off"), *flush(40)])  # fmt: skip
    assert made == []


async def test_the_app_on_top_when_the_screen_went_off_resumes_at_unlock() -> None:
    made = await feed(harness(), [
        app(0, "foreground", "chrome"), system(10, "screen_off"), system(10, "device_lock"),
        system(60, "screen_on"), system(61, "device_unlock"),
        app(61.01, "foreground", "chrome"),  # Android's own resume: part of the same session
        app(70, "background", "chrome"), *flush(80)])  # fmt: skip
    sessions = summary(made)
    assert sessions == [
        ("chrome", iso(0), iso(10), 600.0, 600.0, 0, "screen_off"),
        ("chrome", iso(61), iso(70), 540.0, 540.0, 0, "background"),
    ]
    assert made[1].data["derived_from"]["type"] == "os.events.system.raw"  # opened by the unlock


async def test_no_resume_when_the_app_left_the_front_while_the_screen_was_off() -> None:
    made = await feed(harness(), [
        app(0, "foreground", "chrome"), system(10, "screen_off"),
        app(10.01, "background", "chrome", duration_seconds=601),  # Android stops it: no recount
        system(60, "screen_on"), app(62, "foreground", "signal"),
        app(65, "background", "signal"), *flush(80)])  # fmt: skip
    assert summary(made) == [
        ("chrome", iso(0), iso(10), 600.0, 600.0, 0, "screen_off"),
        ("signal", iso(62), iso(65), 180.0, 180.0, 0, "background"),
    ]


async def test_a_background_whose_foreground_was_missed_uses_its_reported_duration() -> None:
    made = await feed(harness(), [
        app(0, "foreground", "chrome"), app(5, "background", "chrome"),
        # 10 minutes reported, but chrome had the front until minute 5: counted from there
        app(12, "background", "signal", duration_seconds=600),
        app(20, "background", "maps", duration_seconds=120), *flush(30)])  # fmt: skip
    assert summary(made) == [
        ("chrome", iso(0), iso(5), 300.0, 300.0, 0, "background"),
        ("signal", iso(5), iso(12), 420.0, 420.0, 0, "background"),
        ("maps", iso(18), iso(20), 120.0, 120.0, 0, "background"),
    ]
    assert made[2].data["derived_from"]["id"] == "app-pixel-20-background-maps"


async def test_a_session_whose_end_never_came_ends_at_the_last_sign_of_life() -> None:
    # Chrome at the front, then nothing but a charger plugged in; the phone died and
    # came back two days later.
    two_days = 2 * 24 * 60
    made = await feed(harness(), [
        app(0, "foreground", "chrome"), system(90, "power_connected"),
        app(two_days, "foreground", "signal"), app(two_days + 1, "background", "signal"),
        *flush(two_days + 10)])  # fmt: skip
    assert summary(made) == [
        ("chrome", iso(0), iso(90), 5400.0, 5400.0, 0, "timeout"),
        ("signal", iso(two_days), iso(two_days + 1), 60.0, 60.0, 0, "background"),
    ]


async def test_a_session_is_never_longer_than_the_longest_believable_one() -> None:
    made = await feed(harness(apps_max_session_seconds=3600), [
        app(0, "foreground", "chrome"), app(45, "foreground", "chrome"),  # signs of life
        app(100, "background", "chrome"), *flush(120)])  # fmt: skip
    assert summary(made) == [("chrome", iso(0), iso(45), 2700.0, 2700.0, 0, "timeout")]
    made = await feed(harness(apps_max_session_seconds=3600), [
        app(0, "foreground", "chrome"), system(30, "power_connected"),
        system(50, "power_connected"), app(100, "background", "chrome"), *flush(120)])  # fmt: skip
    assert summary(made) == [("chrome", iso(0), iso(50), 3000.0, 3000.0, 0, "timeout")]


async def test_a_reported_duration_is_clamped_to_the_longest_session() -> None:
    made = await feed(harness(apps_max_session_seconds=3600), [
        app(600, "background", "chrome", duration_seconds=10**12), *flush(700)])  # fmt: skip
    assert summary(made) == [("chrome", iso(540), iso(600), 3600.0, 3600.0, 0, "background")]


async def test_a_device_without_screen_events_gets_sessions_after_the_reorder_window() -> None:
    h = harness(apps_reorder_seconds=300)
    assert await feed(h, [app(0, "foreground", "code"), app(60, "background", "code")]) == []
    assert await feed(h, [app(64, "foreground", "mail")]) == []  # 60 is not yet 5 min old
    made = await feed(h, [app(66, "background", "mail")])
    assert summary(made) == [("code", iso(0), iso(60), 3600.0, 3600.0, 0, "background")]


async def test_devices_are_kept_apart() -> None:
    h = harness()
    made = await feed(h, [
        app(0, "foreground", "chrome", device="a"), app(1, "foreground", "maps", device="b"),
        app(5, "background", "chrome", device="a"), app(7, "background", "maps", device="b"),
        *flush(10, "a"), *flush(10, "b")])  # fmt: skip
    assert {(e.device_id, e.data["app_identifier"], e.data["duration_seconds"]) for e in made} == {
        ("a", "chrome", 300.0), ("b", "maps", 360.0)}  # fmt: skip


async def test_long_names_are_cut_and_a_missing_name_falls_back_to_the_identifier() -> None:
    package = "com." + "x" * 400
    made = await feed(harness(), [app(0, "foreground", package, app_name=None),
                                  app(1, "background", package), *flush(5)])  # fmt: skip
    (session,) = made
    assert session.data["app_identifier"] == package[:256]
    assert session.data["app_name"] == package[:256]


async def test_the_device_local_offset_is_kept_so_a_local_day_can_be_told() -> None:
    start = app(0, "foreground", "chrome")
    start.data["timestamp"] = "2026-11-25T23:50:00+01:00"
    end = app(1, "background", "chrome")
    end.data["timestamp"] = "2026-11-26T00:10:00.250+01:00"
    start, end = (received(e, datetime(2026, 11, 26, tzinfo=UTC)) for e in (start, end))
    (session,) = sessions(await feed(harness(), [start, end, *flush(24 * 60)]))
    assert session.data["session_start"] == "2026-11-25T23:50:00+01:00"
    assert session.data["session_end"] == "2026-11-26T00:10:00.250000+01:00"
    assert session.data["duration_seconds"] == 1200.25


async def test_golden_examples_are_taken() -> None:
    h, then = harness(), datetime(2026, 11, 25, 9, tzinfo=UTC)
    for name in ("minimal", "seed-phone-background"):
        event = received(example_event("os.events.app_lifecycle.raw", name=name), then)
        assert await h.call(event) == []
    for name in ("minimal-other-event-type", "seed-phone-unlock"):
        assert await h.call(received(example_event("os.events.system.raw", name=name), then)) == []
    for name in ("event-type-unknown", "missing-app-identifier"):
        with pytest.raises(PoisonEvent, match="breaks its schema"):
            await h.call(example_event("os.events.app_lifecycle.raw", name=name, valid=False))


async def test_android_usage_snapshots_are_not_taken() -> None:
    with pytest.raises(PoisonEvent, match="does not consume"):
        await harness().call_example("device.system.apps.android_usage.raw")
