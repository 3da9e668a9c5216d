"""What a person sees of geocode: the city, region and country they are in, a few times an
hour rather than once a second, from a Nominatim server when one is set."""

from __future__ import annotations

import asyncio
import math
import socket
import time
from collections.abc import AsyncIterator, Callable
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions.geocode.handler import Geocode, handle
from functions.geocode.offline import OfflineGeocoder
from functions.geocode.online import Nominatim
from functions.geocode.settings import GeocodeSettings
from loom.errors import ConfigError
from loom.runtime.event import Event
from loom.runtime.invoke import PoisonEvent
from loom.runtime.state import MemoryStateStore
from loom.settings import load_settings
from loom.testing import FunctionHarness, assert_emitted
from tests.functions.geocode.conftest import FakeNominatim
from tests.functions.georegion.helpers import HOME, at, east_of, fixes, gps, north_of

OUT = "location.address.geocoded"
SYDNEY = (-33.8688, 151.2093)
Make = Callable[..., FunctionHarness]


@pytest.fixture
async def make(places: OfflineGeocoder) -> AsyncIterator[Make]:
    """Builds the function on in-memory state; closes the online clients afterwards."""
    clients: list[Nominatim] = []

    def build(**settings: Any) -> FunctionHarness:
        config = GeocodeSettings(**settings)
        online = Nominatim.from_settings(config)
        if online is not None:
            clients.append(online)
        state = Geocode(config, MemoryStateStore(), places, online)
        return FunctionHarness(handle, state=state, settings=config)

    yield build
    for client in clients:
        await client.aclose()


async def feed(h: FunctionHarness, events: list[Event]) -> list[Event]:
    made: list[Event] = []
    for event in events:
        made.extend(await h.call(event))
    return made


async def test_the_golden_fix_is_in_berlin(make: Make) -> None:
    made = await make().call_example("device.sensor.gps.raw", name="seed-phone")
    (address,) = assert_emitted(made, OUT, count=1)
    assert (address.data["city"], address.data["admin1"]) == ("Mitte", "Berlin")
    assert address.data["country_code"] == "DE"
    assert address.data["provider"] == "offline"
    assert address.data["distance_km"] < 1
    assert address.data["timestamp"] == "2026-11-25T08:15:30.123Z"
    assert address.data["derived_from"]["type"] == "device.sensor.gps.raw"


async def test_the_minimal_fix_is_in_sydney(make: Make) -> None:
    made = await make().call_example("device.sensor.gps.raw", name="minimal")
    (address,) = assert_emitted(made, OUT, count=1)
    assert address.data["city"] == "Sydney"
    assert address.data["admin1"] == "New South Wales"
    assert address.data["admin2"] == "City of Sydney"
    assert address.data["country_code"] == "AU"


async def test_a_phone_sitting_still_gets_its_address_every_half_hour(make: Make) -> None:
    h = make()
    made = await feed(h, [gps(t, HOME) for t in range(0, 3601)])  # an hour at 1 Hz
    assert [e.data["timestamp"] for e in made] == [at(0), at(1800), at(3600)]


async def test_walking_gets_an_address_every_250_m(make: Make) -> None:
    h = make()
    walk = [gps(t, north_of(HOME, 1.5 * t)) for t in range(0, 1800)]  # 1.5 m/s for 30 min
    made = await feed(h, walk)
    assert 9 <= len(made) <= 11  # 2.7 km
    for a, b in pairwise(made):
        moved = (b.data["latitude"] - a.data["latitude"]) * 111_195
        assert moved == pytest.approx(250, abs=2)


async def test_driving_gets_at_most_one_address_a_minute(make: Make) -> None:
    h = make()
    drive = [gps(t, east_of(HOME, 30.0 * t)) for t in range(0, 1800)]  # 108 km/h, 30 min
    made = await feed(h, drive)
    assert len(made) == 30
    assert made[1].data["timestamp"] == at(60)


async def test_no_address_at_sea_or_from_a_coarse_fix(make: Make) -> None:
    h = make()
    assert await h.call(gps(0, (-40.0, -120.0))) == []  # South Pacific
    assert await h.call(gps(100, SYDNEY, accuracy=5000)) == []  # a cell-tower guess
    assert len(await h.call(gps(200, SYDNEY, accuracy=20))) == 1


# ── order, repeats, redelivery ────────────────────────────────────────────────


async def test_the_last_fix_redelivered_makes_the_same_address_again(make: Make) -> None:
    h = make()
    first = await h.call(gps(0, HOME))
    again = await h.call(gps(0, HOME))
    assert [(e.id, e.data) for e in again] == [(e.id, e.data) for e in first]
    assert await h.call(gps(1, HOME)) == []  # it was not applied twice


async def test_a_redelivered_fix_asks_the_server_again_and_gets_the_same_address(
    make: Make, nominatim: FakeNominatim
) -> None:
    h = make(geocode_url=nominatim.url, geocode_online_rate_per_second=0)  # no rate limit
    (first,) = await h.call(gps(0, HOME))
    (again,) = await h.call(gps(0, HOME))  # the last event again, as after a crash
    assert (again.id, again.data) == (first.id, first.data)
    assert again.data["provider"] == "nominatim"


async def test_late_and_older_repeated_fixes_make_nothing(make: Make) -> None:
    h = make()
    await h.call(gps(0, HOME))
    await h.call(gps(10, HOME))
    before = await h.state.store.get("phone-1")
    assert await h.call(gps(0, HOME)) == []
    assert await h.call(gps(5, SYDNEY)) == []
    assert await h.state.store.get("phone-1") == before


async def test_null_island_is_a_dead_letter_and_a_teleport_is_ignored(make: Make) -> None:
    h = make()
    with pytest.raises(PoisonEvent, match="null island"):
        await h.call(gps(0, (0.0, 0.0), accuracy=None))
    await h.call(gps(10, HOME))
    assert await h.call(gps(4000, SYDNEY)) == []  # 16,000 km in an hour
    assert len(await h.call(gps(4001, SYDNEY))) == 1  # ...twice: the track moves on


# ── the online geocoder ──────────────────────────────────────────────────────


async def test_a_nominatim_server_gives_the_street_level_address(
    make: Make, nominatim: FakeNominatim
) -> None:
    h = make(geocode_url=nominatim.url, geocode_language="de")
    (address,) = await h.call(gps(0, (52.520008, 13.404954)))
    assert address.data["provider"] == "nominatim"
    assert (address.data["city"], address.data["admin1"]) == ("Berlin", "Berlin")
    assert address.data["admin2"] == "Mitte"
    assert address.data["display_name"].startswith("Alexanderplatz")
    assert address.data["distance_km"] == pytest.approx(0.6, abs=0.1)
    (asked,) = nominatim.requests
    assert asked["path"] == "/reverse"
    assert asked["query"]["format"] == ["jsonv2"]
    assert float(asked["query"]["lat"][0]) == pytest.approx(52.520008)
    assert float(asked["query"]["lon"][0]) == pytest.approx(13.404954)
    assert asked["query"]["accept-language"] == ["de"]
    assert asked["user_agent"] == "loom-geocode/1.0"


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (500, {"error": "internal"}),
        (200, {"error": "Unable to geocode"}),
        (200, {"address": {"country_code": "de"}}),  # no city, no region
        (200, "not an object"),
    ],
    ids=["server-error", "nothing-here", "incomplete", "not-json-object"],
)
async def test_a_failing_server_falls_back_to_offline(
    make: Make, nominatim: FakeNominatim, status: int, body: Any
) -> None:
    nominatim.status, nominatim.body = status, body
    (address,) = await make(geocode_url=nominatim.url).call(gps(0, HOME))
    assert address.data["provider"] == "offline"
    assert address.data["admin1"] == "Berlin"
    assert len(nominatim.requests) == 1


async def test_a_slow_server_falls_back_to_offline_after_the_timeout(
    make: Make, nominatim: FakeNominatim
) -> None:
    nominatim.delay = 2.0
    h = make(geocode_url=nominatim.url, geocode_timeout_seconds=0.2)
    started = time.perf_counter()
    (address,) = await h.call(gps(0, HOME))
    assert address.data["provider"] == "offline"
    assert time.perf_counter() - started < 1.5


async def test_an_unreachable_server_falls_back_to_offline(make: Make) -> None:
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    (address,) = await make(geocode_url=f"http://127.0.0.1:{port}").call(gps(0, HOME))
    assert address.data["provider"] == "offline"


async def test_requests_over_the_rate_get_the_offline_answer(
    make: Make, nominatim: FakeNominatim
) -> None:
    h = make(geocode_url=nominatim.url, geocode_online_rate_per_second=1)
    one = await h.call(gps(0, HOME, device_id="phone-1"))
    two = await h.call(gps(0, SYDNEY, device_id="phone-2"))  # the same second
    assert [one[0].data["provider"], two[0].data["provider"]] == ["nominatim", "offline"]
    assert len(nominatim.requests) == 1


async def test_no_request_is_made_for_a_fix_that_gets_no_address(
    make: Make, nominatim: FakeNominatim
) -> None:
    h = make(geocode_url=nominatim.url)
    made = await feed(h, [gps(t, HOME) for t in range(0, 120)])  # 2 minutes sitting still
    assert len(made) == 1
    assert len(nominatim.requests) == 1


# ── settings and places files ────────────────────────────────────────────────


def test_the_online_url_must_be_http() -> None:
    with pytest.raises(ConfigError, match="LOOM_GEOCODE_URL"):
        load_settings(GeocodeSettings, geocode_url="ftp://nominatim.example")
    assert GeocodeSettings(geocode_url="https://n.example/").geocode_url == "https://n.example"
    assert GeocodeSettings().geocode_url is None  # off by default


def test_a_places_file_of_ones_own_is_used(tmp_path: Path) -> None:
    path = tmp_path / "places.csv"
    path.write_text("lat,lon,name,admin1,admin2,cc\n"
                    "10.0,10.0,Alpha,,North,xx\n"
                    "-10.0,-10.0,Beta,South,,YY\n")  # fmt: skip
    geocoder = OfflineGeocoder(path)
    alpha = geocoder.reverse(10.01, 10.0)
    assert (alpha.city, alpha.admin1, alpha.admin2, alpha.country_code) == (
        "Alpha", "North", "North", "XX"
    )  # fmt: skip
    assert alpha.distance_km == pytest.approx(1.112, abs=0.01)
    assert geocoder.reverse(-9, -9).city == "Beta"
    assert math.isclose(geocoder.reverse(-10, -10).distance_km or 0, 0, abs_tol=1e-3)


def test_a_places_file_with_another_header_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "places.csv"
    path.write_text("latitude,longitude,city\n1,2,x\n")
    with pytest.raises(ConfigError, match="header"):
        OfflineGeocoder(path)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=st.lists(fixes, min_size=1, max_size=8))
def test_any_valid_fixes_make_valid_addresses_or_dead_letters(
    places: OfflineGeocoder, batch: list[dict[str, Any]]
) -> None:
    config = GeocodeSettings(geocode_min_interval_seconds=0, geocode_min_distance_m=0)
    h = FunctionHarness(handle, state=Geocode(config, MemoryStateStore(), places),
                        settings=config)  # fmt: skip
    reasons: list[str] = []

    async def run() -> None:
        for n, data in enumerate(batch):
            event = Event(type="device.sensor.gps.raw", data=data, id=f"e{n}",
                          device_id=data["device_id"])  # fmt: skip
            try:
                await h.call(event)  # outputs are schema-checked by the harness
            except PoisonEvent as exc:
                reasons.append(str(exc))

    asyncio.run(run())
    clock = ("ahead of when Loom received it", "before 2000")  # the runtime's own check
    assert all("null island" in r or any(c in r for c in clock) for r in reasons), reasons
