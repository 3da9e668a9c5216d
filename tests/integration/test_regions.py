"""Saved georegions through ingest's admin routes, on real PostgreSQL, and the georegion
function reading them from there."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi.testclient import TestClient

from functions.georegion.handler import handle
from functions.georegion.settings import GeoregionSettings
from functions.ingest import IngestSettings
from loom.runtime.event import Event
from loom.testing import FunctionHarness, assert_emitted
from tests.integration.ingest_helpers import assert_problem, register

SQUARE = [[13.40, 52.52], [13.41, 52.52], [13.41, 52.53], [13.40, 52.53]]


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def new_id() -> str:
    return f"r-{uuid.uuid4().hex[:10]}"


def create(client: TestClient, admin: str, **body: Any) -> dict[str, Any]:
    body.setdefault("region_id", new_id())
    body.setdefault("name", "Home")
    answer = client.post("/regions", json=body, headers=auth(admin))
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def test_a_circle_is_saved_listed_and_read_back(client: TestClient, admin: str) -> None:
    made = create(client, admin, kind="home", latitude=52.52, longitude=13.405, radius_m=150)
    assert made["kind"] == "home"
    assert (made["latitude"], made["longitude"], made["radius_m"]) == (52.52, 13.405, 150)
    assert made["polygon"] is None
    assert made["device_id"] is None
    got = client.get(f"/regions/{made['region_id']}", headers=auth(admin))
    assert got.status_code == 200
    assert got.json() == made
    listed = client.get("/regions", headers=auth(admin)).json()
    assert made in listed


def test_a_polygon_is_saved_closed(client: TestClient, admin: str) -> None:
    made = create(client, admin, name="Office", kind="work",
                  polygon={"type": "Polygon", "coordinates": [SQUARE]})  # fmt: skip
    assert made["polygon"]["coordinates"][0] == [*SQUARE, SQUARE[0]]
    assert made["latitude"] is None
    assert made["radius_m"] is None


def test_the_id_is_generated_when_left_out(client: TestClient, admin: str) -> None:
    body = {"name": "Gym", "latitude": 1.0, "longitude": 2.0, "radius_m": 50}
    answer = client.post("/regions", json=body, headers=auth(admin))
    assert answer.status_code == 201
    assert answer.json()["region_id"].startswith("reg-")
    assert answer.json()["kind"] == "custom"


def test_listing_for_a_device_shows_its_own_and_everyones(client: TestClient, admin: str) -> None:
    phone, other = register(client, admin), register(client, admin)
    mine = create(client, admin, device_id=phone["device_id"], latitude=1, longitude=1,
                  radius_m=10)  # fmt: skip
    theirs = create(client, admin, device_id=other["device_id"], latitude=1, longitude=1,
                    radius_m=10)  # fmt: skip
    shared = create(client, admin, latitude=1, longitude=1, radius_m=10)
    listed = client.get("/regions", params={"device_id": phone["device_id"]},
                        headers=auth(admin)).json()  # fmt: skip
    ids = {r["region_id"] for r in listed}
    assert {mine["region_id"], shared["region_id"]} <= ids
    assert theirs["region_id"] not in ids


def test_a_region_is_a_circle_or_a_polygon_not_both_nor_neither(
    client: TestClient, admin: str
) -> None:
    both = {"name": "x", "latitude": 1, "longitude": 1, "radius_m": 5,
            "polygon": {"type": "Polygon", "coordinates": [SQUARE]}}  # fmt: skip
    assert_problem(client.post("/regions", json=both, headers=auth(admin)), 422, "not both")
    neither = {"name": "x", "latitude": 1, "longitude": 1}
    assert_problem(client.post("/regions", json=neither, headers=auth(admin)), 422, "radius_m")


def test_impossible_shapes_are_refused_saying_why(client: TestClient, admin: str) -> None:
    cases = {
        "antimeridian": [[179.9, 0], [-179.9, 0], [-179.9, 1], [179.9, 1]],
        "3 distinct": [[1, 1], [1, 1], [2, 2], [1, 1]],
        "no area": [[0, 0], [1, 1], [2, 2]],
        "on Earth": [[0, 0], [1, 95], [2, 2]],
    }
    for phrase, ring in cases.items():
        body = {"name": "x", "polygon": {"type": "Polygon", "coordinates": [ring]}}
        assert_problem(client.post("/regions", json=body, headers=auth(admin)), 422, phrase)
    body = {"name": "x", "latitude": 1, "longitude": 1, "radius_m": 0}
    assert_problem(client.post("/regions", json=body, headers=auth(admin)), 422)


def test_only_the_admin_token_manages_regions(client: TestClient, admin: str) -> None:
    phone = register(client, admin)
    assert_problem(client.get("/regions"), 401)
    assert_problem(client.get("/regions", headers=auth(phone["token"])), 403, "admin")
    body = {"name": "x", "latitude": 1, "longitude": 1, "radius_m": 5}
    assert_problem(client.post("/regions", json=body, headers=auth(phone["token"])), 403)


def test_unknown_devices_and_taken_ids_are_refused(client: TestClient, admin: str) -> None:
    body = {"name": "x", "latitude": 1, "longitude": 1, "radius_m": 5, "device_id": "nobody-x"}
    assert_problem(client.post("/regions", json=body, headers=auth(admin)), 404, "device")
    made = create(client, admin, latitude=1, longitude=1, radius_m=5)
    again = {"region_id": made["region_id"], "name": "y", "latitude": 1, "longitude": 1,
             "radius_m": 5}  # fmt: skip
    assert_problem(client.post("/regions", json=again, headers=auth(admin)), 409, "exists")


def test_patch_renames_and_changes_the_shape(client: TestClient, admin: str) -> None:
    phone = register(client, admin)
    made = create(client, admin, latitude=1, longitude=1, radius_m=5, device_id=phone["device_id"])
    url = f"/regions/{made['region_id']}"
    renamed = client.patch(url, json={"name": "Cabin", "kind": "custom"}, headers=auth(admin))
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "Cabin"
    assert renamed.json()["updated_at"] >= made["updated_at"]
    polygon = {"type": "Polygon", "coordinates": [SQUARE]}
    reshaped = client.patch(url, json={"polygon": polygon}, headers=auth(admin)).json()
    assert reshaped["polygon"] is not None
    assert reshaped["latitude"] is None
    half = client.patch(url, json={"latitude": 2.0}, headers=auth(admin))
    assert_problem(half, 422, "latitude, longitude and radius_m")
    circle = {"latitude": 2.0, "longitude": 3.0, "radius_m": 40}
    back = client.patch(url, json=circle, headers=auth(admin)).json()
    assert (back["polygon"], back["radius_m"], back["name"]) == (None, 40, "Cabin")
    everyone = client.patch(url, json={"device_id": None}, headers=auth(admin)).json()
    assert everyone["device_id"] is None
    assert client.patch(url, json={"radius_m": 60}, headers=auth(admin)).json()["radius_m"] == 60


def test_delete_removes_it(client: TestClient, admin: str) -> None:
    made = create(client, admin, latitude=1, longitude=1, radius_m=5)
    url = f"/regions/{made['region_id']}"
    assert client.delete(url, headers=auth(admin)).json()["region_id"] == made["region_id"]
    assert_problem(client.get(url, headers=auth(admin)), 404, "no region")
    assert_problem(client.delete(url, headers=auth(admin)), 404)
    assert_problem(client.patch(url, json={"name": "z"}, headers=auth(admin)), 404)


def fix(device_id: str, n: int, lat: float, lon: float) -> Event:
    data = {"device_id": device_id, "timestamp": f"2026-11-25T08:{n:02d}:00Z",
            "latitude": lat, "longitude": lon, "accuracy": 5.0}  # fmt: skip
    return Event(type="device.sensor.gps.raw", data=data, id=f"{device_id}-{n}",
                 source=f"/devices/{device_id}", device_id=device_id)  # fmt: skip


async def test_the_function_reads_saved_regions_and_keeps_its_state_in_postgres(
    client: TestClient, admin: str, ingest_settings: IngestSettings
) -> None:
    phone = register(client, admin)["device_id"]
    away = [[lon - 5, lat - 5] for lon, lat in SQUARE]  # where no other test saves regions
    region = create(client, admin, name="Office", kind="work", device_id=phone,
                    polygon={"type": "Polygon", "coordinates": [away]})  # fmt: skip
    settings = GeoregionSettings(database_url=ingest_settings.database_url,
                                 georegion_dwell_seconds=60)  # fmt: skip
    async with FunctionHarness(handle, settings=settings) as harness:
        assert await harness.call(fix(phone, 0, 47.525, 8.405)) == []  # pending
        made = await harness.call(fix(phone, 1, 47.525, 8.406))
        (enter,) = assert_emitted(made, "location.georegion.detected", count=1)
        assert enter.data["region_id"] == region["region_id"]
        assert enter.data["transition"] == "enter"
        assert enter.data["timestamp"] == "2026-11-25T08:00:00Z"
        saved = await harness.state.store.get(phone)
    assert saved["regions"][region["region_id"]]["in"] is True
