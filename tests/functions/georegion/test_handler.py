"""What a person sees of georegion: one enter when they arrive, one exit when they leave,
at the times they did, and nothing from GPS noise."""

from __future__ import annotations

import random

import pytest

from functions.georegion.geometry import Circle
from functions.georegion.handler import Georegion, handle
from functions.georegion.regions import Region, StaticRegions
from loom.runtime.invoke import PoisonEvent
from loom.runtime.state import MemoryStateStore
from loom.testing import FunctionHarness, assert_emitted, example_event
from tests.functions.georegion.helpers import (
    HOME,
    at,
    east_of,
    feed,
    gps,
    harness,
    home,
    north_of,
    square,
    transitions,
)

OUT = "location.georegion.detected"


async def test_the_golden_fix_enters_a_region_around_it() -> None:
    h = harness([home(radius_m=100)], georegion_dwell_seconds=0)
    made = await h.call_example("device.sensor.gps.raw", name="seed-phone")
    (enter,) = assert_emitted(made, OUT, count=1)
    assert enter.data["transition"] == "enter"
    assert enter.data["region_id"] == "home"
    assert (enter.data["region_name"], enter.data["region_kind"]) == ("Home", "home")
    assert enter.data["radius_m"] == 100
    assert enter.data["distance_m"] == pytest.approx(3.2, abs=0.2)
    assert enter.data["derived_from"]["type"] == "device.sensor.gps.raw"
    assert enter.device_id == "pixel-7-ab12"


async def test_a_fix_far_from_every_region_makes_nothing() -> None:
    h = harness([home()], georegion_dwell_seconds=0)
    assert await h.call_example("device.sensor.gps.raw", name="minimal") == []  # Sydney


async def test_arriving_is_said_once_it_held_for_the_dwell_time_at_the_arrival_time() -> None:
    h = harness([home()], georegion_dwell_seconds=60)
    inside = HOME
    early = await feed(h, [gps(t, inside) for t in range(0, 60, 10)])
    assert early == []
    made = await h.call(gps(60, east_of(inside, 3)))
    (enter,) = assert_emitted(made, OUT, count=1)
    assert enter.data["timestamp"] == at(0)  # when they arrived, not when Loom was sure
    assert (enter.data["latitude"], enter.data["longitude"]) == inside
    assert await feed(h, [gps(t, inside) for t in range(70, 600, 10)]) == []


async def test_leaving_is_said_with_how_long_they_stayed() -> None:
    h = harness([home()], georegion_dwell_seconds=60)
    away = north_of(HOME, 400)
    made = await feed(h, [gps(t, HOME) for t in range(0, 3601, 30)])
    made += await feed(h, [gps(t, away) for t in range(3630, 3800, 30)])
    assert transitions(made) == [("home", "enter", at(0)), ("home", "exit", at(3630))]
    assert made[1].data["dwell_seconds"] == 3630
    assert made[1].data["distance_m"] == pytest.approx(400, abs=1)


@pytest.mark.parametrize(
    ("dwell", "margin", "flaps"),
    [(60, 50, False), (60, 0, False), (0, 50, False), (0, 0, True)],
    ids=["defaults", "dwell-alone", "margin-alone", "neither"],
)
async def test_jitter_at_the_edge_does_not_flap(dwell: float, margin: float, flaps: bool) -> None:
    """A phone parked 100 m from the centre of a 100 m region, ±30 m of noise, for an hour:
    the dwell time or the margin alone keeps it quiet; without both it flaps."""
    h = harness([home(radius_m=100)], georegion_dwell_seconds=dwell, georegion_margin_m=margin)
    await feed(h, [gps(t, HOME) for t in range(0, 120, 10)])  # arrived: inside
    noise = random.Random(7)
    edge = [gps(120 + t, north_of(HOME, 100 + noise.uniform(-30, 30)),
                accuracy=noise.uniform(5, 25)) for t in range(3600)]  # fmt: skip
    made = await feed(h, edge)
    assert (len(made) > 100) is flaps
    if not flaps:
        assert (await h.state.store.get("phone-1"))["regions"]["home"]["in"] is True


async def test_a_short_trip_out_and_back_within_the_dwell_time_says_nothing() -> None:
    h = harness([home()], georegion_dwell_seconds=120)
    made = await feed(h, [gps(t, HOME) for t in range(0, 300, 20)])
    made += await feed(h, [gps(t, north_of(HOME, 500)) for t in range(300, 400, 20)])
    made += await feed(h, [gps(t, HOME) for t in range(400, 900, 20)])
    assert transitions(made) == [("home", "enter", at(0))]


async def test_a_fix_whose_accuracy_circle_reaches_outside_does_not_enter() -> None:
    h = harness([home(radius_m=100)], georegion_dwell_seconds=0)
    near_edge = north_of(HOME, 80)
    assert await h.call(gps(0, near_edge, accuracy=30)) == []  # 80 + 30 > 100: unsure
    assert transitions(await h.call(gps(10, near_edge, accuracy=15))) == [
        ("home", "enter", at(10))
    ]  # 80 + 15 <= 100


async def test_leaving_needs_the_accuracy_circle_past_the_margin() -> None:
    h = harness([home(radius_m=100)], georegion_dwell_seconds=0, georegion_margin_m=50)
    await h.call(gps(0, HOME))
    assert await h.call(gps(10, north_of(HOME, 160), accuracy=20)) == []  # 160 - 20 <= 150
    assert transitions(await h.call(gps(20, north_of(HOME, 175), accuracy=20))) == [
        ("home", "exit", at(20))
    ]


async def test_fixes_too_coarse_to_tell_move_nothing() -> None:
    h = harness([home()], georegion_dwell_seconds=0, georegion_max_accuracy_m=200)
    await h.call(gps(0, HOME))
    far = north_of(HOME, 5000)
    assert await feed(h, [gps(t, far, accuracy=800) for t in range(10, 600, 10)]) == []
    assert transitions(await h.call(gps(600, far, accuracy=10))) == [("home", "exit", at(600))]


async def test_a_fix_without_accuracy_gets_the_default_one() -> None:
    h = harness([home(radius_m=100)], georegion_dwell_seconds=0,
                georegion_default_accuracy_m=50)  # fmt: skip
    assert await h.call(gps(0, north_of(HOME, 60), accuracy=None)) == []  # 60 + 50 > 100
    # Android sends 0 when it has no accuracy: treated as unknown too
    assert await h.call(gps(10, north_of(HOME, 60), accuracy=0)) == []
    assert len(await h.call(gps(20, north_of(HOME, 40), accuracy=None))) == 1


async def test_a_polygon_is_entered_and_its_hole_is_outside() -> None:
    office = square("office", HOME, half_m=200, hole_m=50)
    h = harness([office], georegion_dwell_seconds=0, georegion_margin_m=20)
    made = await h.call(gps(0, north_of(HOME, 150)))
    assert transitions(made) == [("office", "enter", at(0))]
    assert "radius_m" not in made[0].data
    assert made[0].data["distance_m"] == pytest.approx(150, abs=1)  # to the outline's centre
    assert await h.call(gps(10, north_of(HOME, 190), accuracy=5)) == []  # 10 m in: still in
    assert transitions(await h.call(gps(20, HOME))) == [("office", "exit", at(20))]  # the hole
    assert transitions(await h.call(gps(30, east_of(HOME, 120)))) == [("office", "enter", at(30))]
    assert transitions(await h.call(gps(40, east_of(HOME, 300)))) == [("office", "exit", at(40))]


async def test_moving_from_one_region_to_another_says_both_in_region_order() -> None:
    work_centre = east_of(HOME, 2000)
    work = square("work", work_centre, half_m=150)
    h = harness([home(), work], georegion_dwell_seconds=0)
    await h.call(gps(0, HOME))
    made = await h.call(gps(300, work_centre))
    assert transitions(made) == [("home", "exit", at(300)), ("work", "enter", at(300))]
    assert len({e.id for e in made}) == 2


async def test_a_region_of_one_device_is_not_anothers() -> None:
    h = harness([home(device_id="phone-1")], georegion_dwell_seconds=0)
    assert len(await h.call(gps(0, HOME, device_id="phone-1"))) == 1
    assert await h.call(gps(0, HOME, device_id="phone-2")) == []


async def test_a_deleted_region_is_forgotten_without_an_exit() -> None:
    regions = StaticRegions([home()])
    config = harness([], georegion_dwell_seconds=0).state.settings
    h = FunctionHarness(handle, state=Georegion(config, MemoryStateStore(), regions),
                        settings=config)  # fmt: skip
    assert len(await h.call(gps(0, HOME))) == 1
    regions.regions = []
    assert await h.call(gps(10, north_of(HOME, 1000))) == []
    assert "home" not in (await h.state.store.get("phone-1"))["regions"]


async def test_dwell_reports_while_staying_when_asked_for() -> None:
    h = harness([home()], georegion_dwell_seconds=0, georegion_dwell_report_seconds=600)
    made = await feed(h, [gps(t, HOME) for t in range(0, 1900, 60)])
    assert [(e.data["transition"], e.data.get("dwell_seconds")) for e in made] == [
        ("enter", None), ("dwell", 600), ("dwell", 1200), ("dwell", 1800),
    ]  # fmt: skip


async def test_no_dwell_reports_by_default() -> None:
    h = harness([home()], georegion_dwell_seconds=0)
    assert len(await feed(h, [gps(t, HOME) for t in range(0, 7200, 60)])) == 1


# ── order, repeats, redelivery ────────────────────────────────────────────────


async def test_a_late_fix_changes_nothing() -> None:
    h = harness([home()], georegion_dwell_seconds=60)
    await feed(h, [gps(t, HOME) for t in (0, 30, 60, 90)])
    before = await h.state.store.get("phone-1")
    assert await h.call(gps(45, north_of(HOME, 5000))) == []  # older than the last one
    assert await h.call(gps(90, north_of(HOME, 5000), message_id="other")) == []  # same time
    assert await h.state.store.get("phone-1") == before


async def test_the_last_fix_redelivered_makes_the_same_events_again() -> None:
    h = harness([home()], georegion_dwell_seconds=60)
    await h.call(gps(0, HOME))
    first = await h.call(gps(60, HOME))
    again = await h.call(gps(60, HOME))
    assert len(first) == 1
    assert [(e.id, e.data) for e in again] == [(e.id, e.data) for e in first]
    assert await h.call(gps(90, HOME)) == []  # and it was not applied twice


async def test_an_older_fix_redelivered_makes_nothing() -> None:
    h = harness([home()], georegion_dwell_seconds=0)
    first = gps(0, HOME)
    assert len(await h.call(first)) == 1
    await h.call(gps(10, HOME))
    assert await h.call(first) == []


async def test_replaying_a_day_makes_the_same_events_with_the_same_ids() -> None:
    day = [gps(t, HOME if t < 3600 else north_of(HOME, 800)) for t in range(0, 7200, 30)]
    once = await feed(harness([home()]), day)
    twice = await feed(harness([home()]), day)
    assert [e.id for e in once] == [e.id for e in twice]
    assert [e.data["transition"] for e in once] == ["enter", "exit"]


# ── impossible and implausible fixes ─────────────────────────────────────────


@pytest.mark.parametrize("accuracy", [None, 500.0])
async def test_null_island_without_a_good_accuracy_is_a_dead_letter(
    accuracy: float | None,
) -> None:
    h = harness([home()])
    with pytest.raises(PoisonEvent, match="null island"):
        await h.call(gps(0, (0.0, 0.0), accuracy=accuracy))


async def test_null_island_with_a_good_accuracy_is_a_place_like_any_other() -> None:
    buoy = Region("buoy", "Buoy", "custom", Circle(0.0, 0.0, 50))
    h = harness([buoy], georegion_dwell_seconds=0)
    assert transitions(await h.call(gps(0, (0.0, 0.0), accuracy=3))) == [("buoy", "enter", at(0))]


async def test_a_teleport_is_ignored_and_the_track_goes_on() -> None:
    h = harness([home()], georegion_dwell_seconds=0)
    await h.call(gps(0, HOME))
    assert await h.call(gps(1, (-33.8688, 151.2093))) == []  # Sydney a second later
    assert (await h.state.store.get("phone-1"))["regions"]["home"]["in"] is True
    assert await h.call(gps(2, HOME)) == []


async def test_after_a_glitch_two_fixes_that_agree_win() -> None:
    h = harness([home()], georegion_dwell_seconds=0)
    assert await h.call(gps(0, (-33.8688, 151.2093))) == []  # the glitch comes first
    assert await h.call(gps(1, HOME)) == []  # a teleport from the glitch: held back
    assert transitions(await h.call(gps(2, HOME))) == [("home", "enter", at(2))]


async def test_a_fix_that_breaks_the_schema_is_refused_by_the_host() -> None:
    h = harness([home()])
    with pytest.raises(PoisonEvent, match="latitude"):
        await h.call(example_event("device.sensor.gps.raw", name="latitude-out-of-range",
                                   valid=False))  # fmt: skip
