"""Every reading becomes one enriched event: charge rate, time to empty or full, source."""

from __future__ import annotations

import pytest

from functions.power.handler import handle
from functions.power.reading import power_source
from loom.runtime.registry import REGISTRY, discover
from loom.runtime.state import MemoryStateStore
from loom.testing import FunctionHarness, assert_emitted
from tests.functions.power.conftest import ENRICHED, RAW, Feed, make_feed


async def test_each_golden_reading_makes_one_valid_enriched_event() -> None:
    harness = FunctionHarness(handle, state=MemoryStateStore())
    for name in ("minimal", "seed-phone-charging"):
        made = await harness.call_example(RAW, name)
        (enriched,) = assert_emitted(made, ENRICHED, count=1)
        assert enriched.data["derived_from"]["type"] == RAW
        assert enriched.device_id == enriched.data["device_id"]
    assert made[0].data["power_source"] == "usb"
    assert made[0].data["battery_level"] == 67.5


def test_it_is_registered_as_an_ordered_function() -> None:
    spec = discover(registry=REGISTRY)["power"]
    assert spec.ordered
    assert spec.consumes == (RAW,)
    assert set(spec.produces) == {ENRICHED, "device.state.power.patterns"}


async def test_the_first_reading_has_no_rate_yet(feed: Feed) -> None:
    first = await feed.reading(0, 80)
    assert first["charge_rate_pct_per_hour"] == 0.0
    assert first["time_to_empty_minutes"] is None
    assert first["time_to_full_minutes"] is None


async def test_a_steady_drain_gives_its_rate_and_the_time_to_empty(feed: Feed) -> None:
    for minute in range(0, 61, 5):  # 80 % down 1 % every 5 minutes: -12 %/h
        last = await feed.reading(minute, 80 - minute / 5)
    assert last["charge_rate_pct_per_hour"] == pytest.approx(-12.0)
    assert last["time_to_empty_minutes"] == pytest.approx(68 / 12 * 60, abs=0.1)
    assert last["time_to_full_minutes"] is None
    assert last["power_source"] == "battery"


async def test_charging_gives_the_time_to_full(feed: Feed) -> None:
    for minute in range(0, 31, 2):  # 1 % a minute: 60 %/h
        last = await feed.reading(minute, 40 + minute, charging=True, source="AC")
    assert last["charge_rate_pct_per_hour"] == pytest.approx(60.0)
    assert last["time_to_full_minutes"] == pytest.approx(30.0)
    assert last["time_to_empty_minutes"] is None
    assert last["power_source"] == "ac"


async def test_a_full_battery_on_the_charger_is_zero_minutes_from_full(feed: Feed) -> None:
    for minute in range(0, 20, 5):
        last = await feed.reading(minute, 100, charging=True)
    assert last["charge_rate_pct_per_hour"] == 0.0
    assert last["time_to_full_minutes"] == 0.0


async def test_a_level_that_does_not_move_has_no_time_estimate(feed: Feed) -> None:
    for minute in range(0, 40, 5):
        last = await feed.reading(minute, 55)
    assert last["charge_rate_pct_per_hour"] == 0.0
    assert last["time_to_empty_minutes"] is None


async def test_the_rate_is_smoothed_over_integer_steps(feed: Feed) -> None:
    # Reported every minute, rounded to whole percent, draining 6 %/h: the level steps
    # by 1 every 10 minutes, yet the rate stays near 6 %/h instead of jumping.
    rates = []
    for minute in range(0, 120):
        enriched = await feed.reading(minute, round(90 - minute / 10))
        rates.append(enriched["charge_rate_pct_per_hour"])
    assert all(-8.0 < r < -4.5 for r in rates[30:])


async def test_plugging_in_starts_a_new_rate(feed: Feed) -> None:
    for minute in range(0, 31, 5):
        await feed.reading(minute, 80 - minute / 5)
    plugged = await feed.reading(31, 74, charging=True)
    assert plugged["charge_rate_pct_per_hour"] == 0.0  # not the slope across plugging in
    assert plugged["time_to_empty_minutes"] is None
    for minute in range(32, 45, 2):
        later = await feed.reading(minute, 74 + (minute - 31))
    assert later["charge_rate_pct_per_hour"] == pytest.approx(60.0)


async def test_readings_at_the_same_instant_do_not_divide_by_zero(feed: Feed) -> None:
    for level in (80, 79, 81, 80):
        enriched = await feed.reading(0, level)
        assert enriched["charge_rate_pct_per_hour"] == 0.0
    enriched = await feed.reading(10, 78)
    assert enriched["charge_rate_pct_per_hour"] < 0


async def test_zero_minimum_span_and_same_instant_readings() -> None:
    feed = make_feed(power_rate_min_span_seconds=0)
    await feed.reading(0, 80)
    same = await feed.reading(0, 79)
    assert same["charge_rate_pct_per_hour"] == 0.0


async def test_a_short_gap_is_bridged_by_the_reading_before_it(feed: Feed) -> None:
    for minute in range(0, 11, 5):
        await feed.reading(minute, 80)
    after = await feed.reading(70, 74)  # asleep for an hour, 6 % used meanwhile
    assert after["charge_rate_pct_per_hour"] == pytest.approx(-6.0)


async def test_after_a_long_silence_the_rate_starts_over(feed: Feed) -> None:
    for minute in range(0, 31, 5):
        await feed.reading(minute, 80 - minute / 5)
    after = await feed.reading(30 + 5 * 60, 40)  # five hours later
    assert after["charge_rate_pct_per_hour"] == 0.0
    assert after["time_to_empty_minutes"] is None


async def test_absurd_rates_are_bounded_by_the_schema() -> None:
    feed = make_feed(power_rate_min_span_seconds=0)
    await feed.reading(0, 100)
    enriched = await feed.reading(0.01, 0)  # 100 % in 0.6 s
    assert enriched["charge_rate_pct_per_hour"] == -1000.0


async def test_the_state_stays_small_for_a_chatty_device(feed: Feed) -> None:
    for second in range(0, 3600, 2):
        await feed.reading(second / 60, 80 - second / 360)
    state = await feed.store.get("phone")
    assert len(state["window"]) <= 40


@pytest.mark.parametrize(
    ("named", "charging", "expected"),
    [
        ("ac", True, "ac"),
        ("AC Power", True, "ac"),
        ("USB-C", True, "usb"),
        ("wireless", True, "wireless"),
        ("Battery Power", False, "battery"),
        (None, False, "battery"),
        (None, True, "unknown"),
        ("solar", True, "unknown"),
    ],
)
def test_power_sources_are_named_as_the_schema_knows_them(
    named: str | None, charging: bool, expected: str
) -> None:
    assert power_source(named, charging) == expected
