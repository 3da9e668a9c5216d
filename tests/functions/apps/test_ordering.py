"""Order, lateness, duplicates, redelivery and impossible input: one device's sessions come
out the same however its two input topics interleave, and never count time twice."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import pytest

from loom.runtime.event import Event
from loom.runtime.invoke import PoisonEvent
from tests.functions.apps.timeline import (
    APP,
    app,
    at,
    feed,
    flush,
    harness,
    iso,
    received,
    summary,
    system,
)

# One morning: Chrome, the screen off and back on, Signal (its background missed), Maps.
APP_EVENTS = [
    app(0, "launch", "chrome"), app(0, "foreground", "chrome"),
    app(31, "foreground", "chrome"), app(40, "foreground", "signal"),
    app(44, "foreground", "maps"), app(50, "background", "maps"),
    app(51, "terminate", "chrome"),
]  # fmt: skip
SYSTEM_EVENTS = [
    system(0, "screen_on"), system(0.5, "device_unlock"),
    system(10, "screen_off"), system(10.2, "device_lock"),
    system(30, "screen_on"), system(30.5, "device_unlock"), system(47, "power_connected"),
]  # fmt: skip
EXPECTED = [
    ("chrome", iso(0), iso(10), 600.0, 600.0, 1, "screen_off"),
    ("chrome", iso(30.5), iso(40), 570.0, 570.0, 0, "background"),
    ("signal", iso(40), iso(44), 240.0, 240.0, 0, "background"),
    ("maps", iso(44), iso(50), 360.0, 360.0, 0, "background"),
]


def _interleave(rng: random.Random, first: list[Event], second: list[Event]) -> list[Event]:
    """A random merge that keeps each input's own order (as Kafka keeps one topic's)."""
    a, b, out = list(first), list(second), []
    while a or b:
        take = a if (a and (not b or rng.random() < 0.5)) else b
        out.append(take.pop(0))
    return out


def _by_time(events: list[Event]) -> list[Event]:
    return sorted(events, key=lambda e: (e.data["timestamp"], e.type == APP))


async def test_sessions_are_the_same_however_the_two_inputs_interleave() -> None:
    orders = {
        "by time": _by_time(APP_EVENTS + SYSTEM_EVENTS),
        "app events first": APP_EVENTS + SYSTEM_EVENTS,
        "system events first": SYSTEM_EVENTS + APP_EVENTS,
        **{f"random {seed}": _interleave(random.Random(seed), APP_EVENTS, SYSTEM_EVENTS)
           for seed in range(8)},
    }  # fmt: skip
    seen: dict[str, list[tuple[str, dict[str, object]]]] = {}
    for name, events in orders.items():
        made = await feed(harness(apps_reorder_seconds=86_400), [*events, *flush(60)])
        assert summary(made) == EXPECTED, name
        seen[name] = [(e.id, e.data) for e in made]
    first = next(iter(seen.values()))
    assert all(same == first for same in seen.values()), "ids or data differ by order"


async def test_events_out_of_order_within_one_input_are_put_in_order() -> None:
    made = await feed(harness(), [
        app(10, "background", "chrome"), app(0, "foreground", "chrome"),
        app(20, "background", "maps"), app(12, "foreground", "maps"), *flush(30)])  # fmt: skip
    assert summary(made) == [
        ("chrome", iso(0), iso(10), 600.0, 600.0, 0, "background"),
        ("maps", iso(12), iso(20), 480.0, 480.0, 0, "background"),
    ]


async def test_an_event_older_than_what_was_applied_is_dropped_and_counts_nothing() -> None:
    h = harness(apps_reorder_seconds=300)
    made = await feed(h, [app(0, "foreground", "chrome"), app(30, "background", "chrome"),
                          app(60, "foreground", "maps")])  # fmt: skip
    assert summary(made) == [("chrome", iso(0), iso(30), 1800.0, 1800.0, 0, "background")]
    # The screen went off at minute 10, but that came an hour late: chrome's session is
    # already out. It is not cut afterwards, nor counted again.
    assert await feed(h, [system(10, "screen_off"), system(25, "screen_on")]) == []
    assert await feed(h, [app(5, "background", "chrome", duration_seconds=60)]) == []
    state = await h.state.get("pixel")
    assert state["late"] == 3
    made = await feed(h, [app(70, "background", "maps"), *flush(90)])
    assert summary(made) == [("maps", iso(60), iso(70), 600.0, 600.0, 0, "background")]


async def test_a_duplicate_counts_once() -> None:
    events = _by_time(APP_EVENTS + SYSTEM_EVENTS)
    once = await feed(harness(apps_reorder_seconds=86_400), [*events, *flush(60)])
    h = harness(apps_reorder_seconds=86_400)
    twice: list[Event] = []
    for event in [*events, *flush(60)]:
        twice.extend(await h.call(event))
        # the same event again (a redelivery), and again under a new id (a device resend)
        twice.extend(await h.call(event))
        twice.extend(await h.call(Event(type=event.type, data=event.data, id=event.id + "'",
                                        source=event.source, device_id=event.device_id,
                                        extensions=event.extensions)))  # fmt: skip
    unique = {e.id: e.data for e in twice}
    assert unique == {e.id: e.data for e in once}
    assert sorted(summary(list(dict((e.id, e) for e in twice).values()))) == sorted(EXPECTED)


async def test_the_last_event_redelivered_makes_the_same_sessions_again() -> None:
    h = harness()
    await feed(h, [app(0, "foreground", "chrome"), system(5, "screen_off"),
                   system(7, "power_connected")])  # fmt: skip
    releasing = app(6, "foreground", "maps")  # both inputs past minute 5: chrome ends
    first = await h.call(releasing)
    state = await h.state.get("pixel")
    again = await h.call(releasing)  # the host crashed before acknowledging it
    assert [(e.id, e.data) for e in again] == [(e.id, e.data) for e in first]
    assert summary(first) == [("chrome", iso(0), iso(5), 300.0, 300.0, 0, "screen_off")]
    assert await h.state.get("pixel") == state


async def test_a_session_keeps_its_id_whichever_event_lets_it_out() -> None:
    a = await feed(harness(), [app(0, "foreground", "chrome"), app(5, "background", "chrome"),
                               *flush(6)])  # fmt: skip
    b = await feed(harness(), [app(0, "foreground", "chrome"), app(5, "background", "chrome"),
                               system(9, "power_connected"),
                               app(8, "foreground", "maps")])  # fmt: skip
    assert len(a) == 1
    assert [e.id for e in a] == [e.id for e in b]


async def test_a_time_more_than_a_day_after_it_was_received_is_dead_lettered() -> None:
    h = harness()
    await feed(h, [app(0, "foreground", "chrome")])
    before = await h.state.get("pixel")
    received_at = datetime(2026, 11, 25, 8, tzinfo=UTC)
    future = received(app(0, "background", "chrome"), received_at)
    future.data["timestamp"] = at(25 * 60)
    with pytest.raises(PoisonEvent, match=r"25\.0 h ahead of when Loom received it"):
        await h.call(future)
    future.data["timestamp"] = at(5)  # a few minutes ahead: a clock can be off that much
    assert await h.call(future) == []
    assert (await h.state.get("pixel"))["marks"] != before["marks"]


async def test_without_a_received_time_the_future_is_judged_by_the_clock() -> None:
    soon = datetime.now(UTC) + timedelta(days=2)
    event = app(0, "foreground", "chrome")
    event = Event(type=event.type, data={**event.data, "timestamp": soon.isoformat()},
                  source=event.source, device_id=event.device_id)  # fmt: skip
    with pytest.raises(PoisonEvent, match="ahead of when Loom received it"):
        await harness().call(event)


async def test_a_clock_that_was_never_set_is_dead_lettered_and_changes_nothing() -> None:
    h = harness()
    await feed(h, [app(0, "foreground", "chrome")])
    before = await h.state.get("pixel")
    unset = app(0, "background", "chrome")
    unset.data["timestamp"] = "1970-01-01T00:00:12Z"
    with pytest.raises(PoisonEvent, match="clock was not set"):
        await h.call(unset)
    assert await h.state.get("pixel") == before


async def test_any_mix_of_events_makes_sessions_that_add_up() -> None:
    """Random events of a few apps and screen changes (some twice), delivered in a random
    interleaving with some late ones: every session is valid (the harness checks the
    schema), none overlaps another, and none counts more foreground time than it lasted."""
    kinds = ["launch", "foreground", "foreground", "background", "terminate", "crash"]
    screens = ["screen_on", "screen_off", "device_lock", "device_unlock", "power_connected"]
    for seed in range(20):
        rng = random.Random(seed)
        apps, systems, minute = [], [], 0.0
        for _ in range(60):
            minute += rng.choice([0, 0.01, 0.5, 3, 20, 300])
            if rng.random() < 0.65:
                extra: dict[str, Any] = {}
                if rng.random() < 0.3:
                    extra["duration_seconds"] = rng.randint(0, 4000)
                apps.append(app(minute, rng.choice(kinds), rng.choice("abc"), **extra))
            else:
                systems.append(system(minute, rng.choice(screens)))
        late = [e for e in apps + systems if rng.random() < 0.1]
        events = _interleave(rng, apps, systems)
        events = [e for e in events if e not in late] + late  # these come far too late
        h = harness(apps_reorder_seconds=rng.choice([0, 60, 3600]))
        made = await feed(h, [*events, *flush(minute + 10)])
        stored = {s.id: s.data for s in made}  # the store keeps one row per id: what it keeps
        assert all(stored[s.id] == s.data for s in made), "one id, two different sessions"
        summaries = [d for d in stored.values() if "date" in d]
        assert len({d["date"] for d in summaries}) == len(summaries), "a day summed twice"
        stored = {i: s for i, s in stored.items() if "date" not in s}
        spans = sorted(
            (datetime.fromisoformat(s["session_start"]), datetime.fromisoformat(s["session_end"]))
            for s in stored.values()
        )
        for s in stored.values():
            assert 0 <= s["foreground_seconds"] <= s["duration_seconds"] <= 86_400
        for (_, end), (start, _) in pairwise(spans):
            assert end <= start, f"seed {seed}: sessions overlap"


async def test_an_event_redelivered_after_the_other_input_moved_on_gets_the_same_reply() -> None:
    # Its reply was lost; meanwhile a screen event of the device was handled.
    h = harness()
    await feed(h, [app(0, "foreground", "chrome"), app(6, "foreground", "maps"),
                   app(9, "background", "maps")])  # fmt: skip
    releasing = system(7, "power_connected")  # both inputs past minute 6: chrome ends
    first = await h.call(releasing)
    assert summary(first) == [("chrome", iso(0), iso(6), 360.0, 360.0, 0, "background")]
    assert await h.call(app(10, "foreground", "chrome")) == []
    again = await h.call(releasing)
    assert [(e.id, e.data) for e in again] == [(e.id, e.data) for e in first]
