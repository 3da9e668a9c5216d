"""The motion function as a user sees it: windows, activities and motion events from
accelerometer samples, and what late, repeated, resent and impossible samples do."""

from __future__ import annotations

import base64
import json
import math
from typing import Any

import numpy as np
import pytest

from functions.motion.handler import handle
from functions.motion.settings import MotionSettings, motion_settings
from loom.errors import ConfigError
from loom.runtime.event import Event
from loom.runtime.invoke import PoisonEvent
from loom.runtime.state import MemoryStateStore
from loom.settings import LoomSettings
from loom.testing import FunctionHarness, assert_emitted, example_event
from tests.functions.motion.feed import RAW, events, feed, of, reading
from tests.functions.motion.signals import ACTIVITIES, Signal, synthesize

WINDOWED = "device.sensor.accelerometer.windowed"
ACTIVITY = "motion.classification.activity"
SIGNIFICANT = "motion.events.significant"
T0 = 1_795_594_500.0  # 2026-11-25T08:15:00Z, on the 2.5 s grid


def _harness(store: MemoryStateStore, **settings: float) -> FunctionHarness:
    values: dict[str, Any] = {"motion_window_seconds": 5.0, "motion_hop_seconds": 2.5, **settings}
    return FunctionHarness(handle, state=store, settings=MotionSettings(**values))


def _offsets(state: dict[str, Any]) -> list[int]:
    """The times of the samples held (ms from the open window's start)."""
    raw = base64.b64decode(state["s"])
    return [int.from_bytes(raw[i : i + 3], "little") for i in range(0, len(raw), 9)]


@pytest.fixture
def store() -> MemoryStateStore:
    return MemoryStateStore()


@pytest.fixture
def harness(store: MemoryStateStore) -> FunctionHarness:
    return _harness(store)


def _still(seconds: float, start: float = T0, seed: int = 0) -> Signal:
    return synthesize("still", seed, seconds=seconds, start=start, exact=True)


def _then(*signals: Signal) -> Signal:
    """The signals one after another, each moved to start where the last one stopped."""
    t, xyz, at = [], [], signals[0].t[0]
    for s in signals:
        t.append(s.t - s.t[0] + at)
        xyz.append(s.xyz)
        at = t[-1][-1] + (s.t[1] - s.t[0])
    return Signal("mixed", np.concatenate(t), np.concatenate(xyz))


@pytest.mark.parametrize("name", ["minimal", "seed-phone"])
async def test_a_golden_sample_opens_a_window_and_makes_nothing_yet(
    harness: FunctionHarness, store: MemoryStateStore, name: str
) -> None:
    event = example_event(RAW, name=name)
    assert await harness.call(event) == []
    state = await store.get(event.data["device_id"])
    assert len(state["s"]) == 12  # one sample


async def test_windows_of_a_steady_signal_lie_on_the_grid(harness: FunctionHarness) -> None:
    made = await feed(harness, events(_still(12)))  # 600 samples, 50 Hz, from T0
    windows = of(made, WINDOWED)
    assert [(w["window_start"], w["window_end"], w["sample_count"]) for w in windows] == [
        ("2026-11-25T08:14:57.500Z", "2026-11-25T08:15:02.500Z", 125),  # the device started
        ("2026-11-25T08:15:00.000Z", "2026-11-25T08:15:05.000Z", 250),
        ("2026-11-25T08:15:02.500Z", "2026-11-25T08:15:07.500Z", 250),
        ("2026-11-25T08:15:05.000Z", "2026-11-25T08:15:10.000Z", 250),
    ]
    full = windows[1]
    assert full["magnitude_mean"] == pytest.approx(9.81, abs=0.05)
    assert full["magnitude_var"] < 0.01
    assert math.dist(list(full["axis_means"].values()), [0, 0, 0]) == pytest.approx(9.81, abs=0.05)
    assert [a["activity"] for a in of(made, ACTIVITY)] == ["unknown", "still", "still", "still"]
    assert of(made, SIGNIFICANT) == []


@pytest.mark.parametrize("activity", ACTIVITIES)
async def test_each_activity_is_recognised_end_to_end(
    harness: FunctionHarness, activity: str
) -> None:
    made = await feed(harness, events(synthesize(activity, seed=3, seconds=15)))
    full = [
        a["activity"]
        for w, a in zip(of(made, WINDOWED), of(made, ACTIVITY), strict=True)
        if w["sample_count"] >= 200
    ]
    assert len(full) >= 4
    assert full == [activity] * len(full)


async def test_a_walking_rhythm_is_its_dominant_frequency(harness: FunctionHarness) -> None:
    t = T0 + np.arange(500) / 50
    bounce = 9.81 + 2.0 * np.sin(2 * np.pi * 1.8 * t)
    sent = [reading(float(s), 0.0, 0.0, float(z)) for s, z in zip(t, bounce, strict=True)]
    made = await feed(harness, sent)
    full = [w for w in of(made, WINDOWED) if w["sample_count"] == 250]
    assert full
    for w in full:
        assert w["dominant_frequency_hz"] == pytest.approx(1.8, abs=0.06)
        assert w["magnitude_var"] == pytest.approx(2.0, rel=0.05)  # A²/2
        assert w["jerk_mean"] == pytest.approx(2 * np.pi * 1.8 * 2.0 * 2 / np.pi, rel=0.05)


async def test_starting_and_stopping_are_significant_motion(harness: FunctionHarness) -> None:
    walk = synthesize("walking", seed=5, seconds=15, exact=True)
    made = await feed(harness, events(_then(_still(15), walk, _still(15, seed=1))))
    moves = of(made, SIGNIFICANT)
    assert [m["event"] for m in moves] == ["start", "stop"]
    start, stop = moves
    assert "08:15:15" <= start["window_end"][11:19] <= "08:15:20"  # walking began at 15 s
    assert "08:15:30" <= stop["window_end"][11:19] <= "08:15:35"  # and ended at 30 s
    assert start["magnitude"] > 11


async def test_an_impact_is_reported_once_though_windows_overlap(
    harness: FunctionHarness,
) -> None:
    quiet = events(_still(12))
    quiet[300] = reading(T0 + 6.0, 30.0, 20.0, 40.0)  # |a| = 53.9 m/s², the phone dropped
    made = await feed(harness, quiet)
    impacts = assert_emitted(made, SIGNIFICANT, count=1)
    assert impacts[0].data["event"] == "impact"
    assert impacts[0].data["magnitude"] == pytest.approx(53.85, abs=0.01)
    assert impacts[0].data["threshold"] == 35.0
    assert impacts[0].data["window_end"] == "2026-11-25T08:15:07.500Z"


async def test_outputs_name_what_they_were_made_from(harness: FunctionHarness) -> None:
    sent = events(_still(6))
    await feed(harness, sent[:250])
    windowed, activity = await harness.call(sent[250])  # at 5.00 s: closes [0 s, 5 s)
    assert windowed.data["derived_from"] == {"type": RAW, "source": sent[250].source,
                                             "id": sent[250].id}  # fmt: skip
    assert activity.data["derived_from"] == {
        "type": WINDOWED, "source": "/loom/functions/motion", "id": windowed.id}  # fmt: skip
    assert activity.data["method"] == "rules"
    assert 0 <= activity.data["confidence"] <= 1


async def test_a_sample_older_than_the_open_window_is_dropped_and_changes_nothing(
    harness: FunctionHarness, store: MemoryStateStore
) -> None:
    await feed(harness, events(_still(8)))
    before = await store.get("phone-1")
    assert await harness.call(reading(T0 + 1.0, 0.0, 0.0, 50.0)) == []
    assert await store.get("phone-1") == {**before}


async def test_a_sample_late_within_its_window_counts_as_if_in_order(
    store: MemoryStateStore,
) -> None:
    sent = events(synthesize("walking", seed=2, seconds=12, exact=True))
    in_order = await feed(_harness(MemoryStateStore()), sent)
    late = sent[:300] + sent[301:351] + [sent[300]] + sent[351:]  # 6.0 s arrives after 7.0 s
    shuffled = await feed(_harness(store), late)
    assert of(shuffled, WINDOWED) == of(in_order, WINDOWED)


async def test_a_resent_reading_does_not_count_twice(store: MemoryStateStore) -> None:
    sent = events(synthesize("running", seed=4, seconds=12))
    once = await feed(_harness(MemoryStateStore()), sent)
    resent = [copy for e in sent for copy in (e, Event(type=RAW, data=e.data, id=e.id + "-again",
              source=e.source, device_id=e.device_id))]  # fmt: skip
    twice = await feed(_harness(store), resent)
    assert [(e.id, e.type, e.data) for e in twice] == [(e.id, e.type, e.data) for e in once]


async def test_a_redelivered_event_makes_the_same_outputs_again(
    harness: FunctionHarness, store: MemoryStateStore
) -> None:
    sent = events(_still(6))
    await feed(harness, sent[:250])
    first = await harness.call(sent[250])
    after = await store.get("phone-1")
    again = await harness.call(sent[250])  # the host crashed before acknowledging
    assert first
    assert [(e.id, e.data) for e in again] == [(e.id, e.data) for e in first]
    assert await store.get("phone-1") == after
    assert await harness.call(sent[245]) == []  # an older one again: already counted
    assert await store.get("phone-1") == after


@pytest.mark.parametrize(
    ("axes", "timestamp", "reason"),
    [
        ((float("nan"), 0.0, 9.81), "2026-11-25T08:15:00Z", "finite"),
        ((0.0, 0.0, float("nan")), "2026-11-25T08:15:00Z", "finite"),
        ((900.0, 900.0, 9.81), "2026-11-25T08:15:00Z", "exceeds 1000"),
        ((0.0, 0.0, 9.81), "1970-01-01T00:00:00Z", "before 2000"),
        ((0.0, 0.0, 9.81), "2150-01-01T00:00:00Z", "ahead of when Loom received it"),
    ],
)
async def test_impossible_readings_are_dead_lettered_with_a_reason(
    harness: FunctionHarness, store: MemoryStateStore, axes: tuple[float, float, float],
    timestamp: str, reason: str,
) -> None:  # fmt: skip
    await feed(harness, events(_still(1)))
    before = await store.get("phone-1")
    event = reading(T0 + 1.0, *axes)
    event.data["timestamp"] = timestamp
    with pytest.raises(PoisonEvent, match=reason):
        await harness.call(event)
    assert await store.get("phone-1") == before


@pytest.mark.parametrize("name", ["missing-z", "sampling-rate-zero", "x-not-a-number"])
async def test_invalid_golden_samples_are_dead_lettered(
    harness: FunctionHarness, name: str
) -> None:
    with pytest.raises(PoisonEvent, match="breaks its schema"):
        await harness.call(example_event(RAW, name=name, valid=False))


async def test_rfc_3339_times_in_lower_case_and_with_offsets_are_read(
    harness: FunctionHarness, store: MemoryStateStore
) -> None:
    for i, stamp in enumerate(["2026-11-25t08:15:00.000z", "2026-11-25T09:15:00.020+01:00"]):
        event = reading(T0, 0.0, 0.0, 9.81, id_=f"e{i}")
        event.data["timestamp"] = stamp
        assert await harness.call(event) == []
    state = await store.get("phone-1")
    assert _offsets(state) == [2500, 2520]


async def test_a_gap_makes_no_empty_windows_and_the_state_stays_small(
    harness: FunctionHarness, store: MemoryStateStore
) -> None:
    made = await feed(harness, events(_then(_still(6))) + events(_still(31, start=T0 + 100)))
    windows = of(made, WINDOWED)
    assert all(w["sample_count"] >= 2 for w in windows)
    ends = [w["window_end"][11:23] for w in windows]
    assert ends[:4] == ["08:15:02.500", "08:15:05.000", "08:15:07.500", "08:15:10.000"]
    assert ends[4] == "08:16:42.500"  # the first after the gap
    state = await store.get("phone-1")
    assert len(_offsets(state)) <= 250
    assert len(json.dumps(state, separators=(",", ":"))) < 3200


async def test_a_clock_set_back_starts_the_window_again(
    harness: FunctionHarness, store: MemoryStateStore
) -> None:
    await feed(harness, events(_still(8)))
    made = await feed(harness, events(_still(12, start=T0 - 3600)))
    assert len(_offsets(await store.get("phone-1"))) < 250
    assert [a["activity"] for a in of(made, ACTIVITY)][1:] == ["still"] * 3


async def test_a_new_window_length_starts_the_window_again(store: MemoryStateStore) -> None:
    await feed(_harness(store), events(_still(4)))
    made = await feed(_harness(store, motion_window_seconds=2, motion_hop_seconds=1),
                      events(_still(6, start=T0 + 4)))  # fmt: skip
    assert {(w["window_start"][17:23], w["window_end"][17:23]) for w in of(made, WINDOWED)} >= {
        ("05.000", "07.000"), ("06.000", "08.000")}  # fmt: skip


async def test_settings_come_from_the_environment(
    store: MemoryStateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOOM_MOTION_WINDOW_SECONDS", "2")
    monkeypatch.setenv("LOOM_MOTION_HOP_SECONDS", "1")
    harness = FunctionHarness(handle, state=store, settings=LoomSettings())
    windows = of(await feed(harness, events(_still(5))), WINDOWED)
    assert [w["sample_count"] for w in windows] == [50, 100, 100, 100]
    monkeypatch.setenv("LOOM_MOTION_HOP_SECONDS", "3")
    with pytest.raises(ConfigError, match="must not exceed"):
        motion_settings(LoomSettings())


async def test_a_slow_device_is_still_or_unknown_never_a_guess(harness: FunctionHarness) -> None:
    def every_second(activity: str) -> list[Event]:
        s = synthesize(activity, seed=1, seconds=30, exact=True)
        return [e for i, e in enumerate(events(s, device=activity)) if i % 50 == 0]

    still = of(await feed(harness, every_second("still")), ACTIVITY)
    walking = of(await feed(harness, every_second("walking")), ACTIVITY)
    assert {a["activity"] for a in still[2:]} == {"still"}
    assert {a["activity"] for a in walking} == {"unknown"}


async def test_a_window_keeps_at_most_max_samples(store: MemoryStateStore) -> None:
    made = await feed(_harness(store, motion_max_samples=100), events(_still(11)))
    assert max(w["sample_count"] for w in of(made, WINDOWED)) == 100
    assert len(_offsets(await store.get("phone-1"))) <= 100


async def test_devices_have_windows_of_their_own(harness: FunctionHarness) -> None:
    walking = events(synthesize("walking", seed=8, seconds=12), device="phone-a")
    still = events(synthesize("still", seed=8, seconds=12), device="watch-b")
    both = sorted(walking + still, key=lambda e: e.data["timestamp"])
    made = await feed(harness, both)
    by_device = {(a["device_id"], a["activity"]) for a in of(made, ACTIVITY)}
    assert by_device - {("phone-a", "unknown"), ("watch-b", "unknown")} == {
        ("phone-a", "walking"), ("watch-b", "still")}  # fmt: skip
