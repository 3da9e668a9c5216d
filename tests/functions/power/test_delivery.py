"""Redeliveries, late and repeated readings, impossible readings and settings."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions.power.handler import handle, power_state
from loom.errors import ConfigError
from loom.runtime.event import Event
from loom.runtime.invoke import PoisonEvent
from loom.runtime.state import MemoryStateStore
from loom.settings import LoomSettings
from loom.testing import FunctionHarness
from tests.functions.power.conftest import ENRICHED, PATTERNS, RAW, Feed, make_feed, raw


async def test_the_last_reading_redelivered_makes_the_same_events(feed: Feed) -> None:
    for minute in range(0, 10):
        await feed.reading(minute, 50 + minute, charging=True)
    await feed.reading(10, 59)
    closing = raw(15, 58)
    first = await feed.send(closing)
    assert [e.type for e in first] == [ENRICHED, PATTERNS]
    again = await feed.send(closing)  # the host died before acknowledging it
    assert [(e.id, e.data) for e in again] == [(e.id, e.data) for e in first]


async def test_a_redelivered_day_summary_keeps_its_id(feed: Feed) -> None:
    await feed.reading(0, 50)
    rollover = raw(24 * 60, 40)
    first = await feed.send(rollover)
    again = await feed.send(rollover)
    assert [e.id for e in again] == [e.id for e in first]
    assert len(feed.days()) == 2  # the same summary twice: the store keeps it once


async def test_a_late_reading_is_enriched_and_changes_nothing(feed: Feed) -> None:
    for minute in range(0, 61, 5):
        await feed.reading(minute, 80 - minute / 5, charging=minute < 30)
    before = await feed.store.get("phone")
    out = await feed.send(raw(40, 72))  # sent late, of the current phase
    (enriched,) = out
    assert enriched.type == ENRICHED
    assert enriched.data["charge_rate_pct_per_hour"] < 0
    out = await feed.send(raw(12, 90, charging=False))  # would have cut the session short
    assert [e.type for e in out] == [ENRICHED]
    assert out[0].data["charge_rate_pct_per_hour"] == 0.0  # nothing kept from then
    assert await feed.store.get("phone") == before
    assert len(feed.sessions()) == 1


async def test_the_same_reading_sent_again_with_a_new_id_changes_nothing(feed: Feed) -> None:
    for minute in range(0, 20, 5):
        last = await feed.reading(minute, 60 + minute, charging=True)
    before = await feed.store.get("phone")
    copy = await feed.send(raw(15, 75, charging=True, event_id="a-copy"))
    assert copy[0].data == {**last, "derived_from": copy[0].data["derived_from"]}
    assert await feed.store.get("phone") == before


async def test_an_older_event_redelivered_adds_no_second_session(feed: Feed) -> None:
    await feed.reading(0, 50, charging=True)
    await feed.reading(5, 55)
    closing = raw(10, 55)
    await feed.send(closing)
    await feed.reading(15, 54)
    assert [e.type for e in await feed.send(closing)] == [ENRICHED]
    assert len(feed.sessions()) == 1


async def poisoned(feed: Feed, event: Event) -> str:
    with pytest.raises(PoisonEvent) as caught:
        await feed.send(event)
    assert await feed.store.get(event.data["device_id"]) == {}
    return str(caught.value)


async def test_a_reading_from_the_future_is_poison(feed: Feed) -> None:
    ahead = datetime.now(UTC) + timedelta(days=2)
    assert "ahead of when Loom received it" in await poisoned(feed, raw(0, 50, start=ahead))
    assert await feed.reading(0, 50, start=datetime.now(UTC) + timedelta(minutes=5))


async def test_a_reading_from_an_unset_clock_is_poison(feed: Feed) -> None:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    assert "before 2000" in await poisoned(feed, raw(0, 50, start=epoch))


async def test_a_level_that_is_not_a_number_is_poison(feed: Feed) -> None:
    assert "not a number" in await poisoned(feed, raw(0, math.nan))


async def test_schema_invalid_readings_are_poison(feed: Feed) -> None:
    for name in ("battery-level-above-100", "is-charging-not-boolean", "missing-is-charging"):
        with pytest.raises(PoisonEvent, match="breaks its schema"):
            await feed.harness.call_example(RAW, name, valid=False)
    assert feed.store.rows == {}


async def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOM_POWER_SESSION_MERGE_SECONDS", "0")
    harness = FunctionHarness(handle, state=MemoryStateStore(), settings=LoomSettings())
    await harness.call(raw(0, 50, charging=True))
    out = await harness.call(raw(1, 51))
    assert [e.type for e in out] == [ENRICHED, PATTERNS]


async def test_bad_settings_stop_the_function_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOM_POWER_RATE_WINDOW_SECONDS", "-5")
    with pytest.raises(ConfigError, match="LOOM_POWER_RATE_WINDOW_SECONDS"):
        async with power_state(LoomSettings()):
            pass


def test_a_minimum_span_longer_than_the_window_is_refused() -> None:
    with pytest.raises(ValueError, match="must not exceed"):
        make_feed(power_rate_window_seconds=60, power_rate_min_span_seconds=120)


_steps = st.lists(
    st.tuples(
        st.sampled_from([0.0, 0.0, 0.5, 1.0, 3.0, 30.0, 200.0, 1500.0]),  # minutes later
        st.floats(0, 100),
        st.booleans(),
        st.sampled_from(["next", "next", "next", "again", "late", "copy"]),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_steps)
async def test_any_sequence_makes_valid_events_and_repeats_them_exactly(
    steps: list[tuple[float, float, bool, str]],
) -> None:
    feed = make_feed()  # invoke() checks every event made against its schema
    minute, last, made, fresh = 0.0, None, [], False
    for n, (later, level, charging, kind) in enumerate(steps):
        if kind == "again" and last is not None:
            again = await feed.send(last)
            if fresh:  # the last event again: everything it made, again
                assert [(e.id, e.data) for e in again] == [(e.id, e.data) for e in made]
            else:  # after others: a repeat of the newest reading, enriched the same
                assert [(e.id, e.data) for e in again] == [(e.id, e.data) for e in made[:1]]
            continue
        fresh = False
        if kind == "late" and last is not None:
            out = await feed.send(raw(minute - later - 1, level, charging, event_id=f"late{n}"))
            assert [e.type for e in out] == [ENRICHED]
        elif kind == "copy" and last is not None:
            out = await feed.send(Event(type=RAW, data=last.data, id=f"copy{n}"))
            assert [e.data for e in out] == [{**made[0].data, "derived_from": out[0].data[
                "derived_from"]}]  # fmt: skip
        else:
            minute += later
            last = raw(minute, level, charging, event_id=f"r{n}")
            made, fresh = await feed.send(last), True
            assert made[0].type == ENRICHED
    summaries = {e.id: e.data["day"] for e in feed.made if e.data.get("day")}
    assert len(set(summaries.values())) == len(summaries)  # each day summarised once
