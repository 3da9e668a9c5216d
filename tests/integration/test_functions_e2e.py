"""The CPU functions end to end on the local runner: events posted to ingest go through
Kafka, the router runs power, motion, apps, georegion and geocode, and the store keeps
what they made."""

from __future__ import annotations

import math
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from fastapi.testclient import TestClient

from functions.apps.handler import handle as apps
from functions.geocode.handler import handle as geocode
from functions.georegion.handler import handle as georegion
from functions.motion.handler import handle as motion
from functions.power.handler import handle as power
from functions.store.handler import handle as store
from loom.catalog import Catalog
from loom.runtime.registry import Registry
from loom.runtime.router import Router
from loom.services import LocalServices
from tests.integration.ingest_helpers import post_batch
from tests.integration.store_helpers import store_settings


def _event(type_: str, device: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "/tests/e2e",
        "type": type_,
        "time": data["timestamp"],
        "partitionkey": device,
        "datacontenttype": "application/json",
        "data": {"device_id": device, **data},
    }


def _rows(url: str, table: str, device: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table} WHERE device_id = %s", (device,))
        return int((row.fetchone() or (0,))[0])


def test_posted_readings_come_back_as_derived_rows(
    services: LocalServices,
    catalog: Catalog,
    client: TestClient,
    admin: str,
    device: dict[str, Any],
    ingest_settings: Any,
    tmp_path: Path,
) -> None:
    name, token = device["device_id"], device["token"]
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)

    def at(seconds: float) -> str:
        return (start + timedelta(seconds=seconds)).isoformat()

    walking = [  # 12 s of a 2 Hz step rhythm at 25 Hz: a few motion windows
        _event(
            "device.sensor.accelerometer.raw",
            name,
            {
                "timestamp": at(i / 25),
                "x": 0.3,
                "y": 9.81 + 2.5 * math.sin(2 * math.pi * 2 * i / 25),
                "z": 0.8 * math.cos(2 * math.pi * 2 * i / 25),
            },
        )
        for i in range(300)
    ]
    battery = [
        _event(
            "device.state.power.raw",
            name,
            {"timestamp": at(60 * m), "battery_level": 80 - m, "is_charging": False},
        )
        for m in range(0, 12, 2)
    ]
    phone_use = [
        _event(
            "os.events.system.raw",
            name,
            {"timestamp": at(0), "event_type": "screen_on", "event_category": "screen"},
        ),
        _event(
            "os.events.app_lifecycle.raw",
            name,
            {"timestamp": at(5), "app_identifier": "org.example.maps", "event_type": "foreground"},
        ),
        _event(
            "os.events.app_lifecycle.raw",
            name,
            {"timestamp": at(65), "app_identifier": "org.example.maps", "event_type": "background"},
        ),
        _event(
            "os.events.system.raw",
            name,
            {"timestamp": at(70), "event_type": "screen_off", "event_category": "screen"},
        ),
        _event(
            "os.events.app_lifecycle.raw",
            name,
            {"timestamp": at(75), "app_identifier": "org.example.mail", "event_type": "launch"},
        ),
    ]
    home = {
        "region_id": f"home-{name}",
        "name": "home",
        "kind": "home",
        "device_id": name,
        "latitude": 52.5200,
        "longitude": 13.4050,
        "radius_m": 150,
    }
    made = client.post("/regions", json=home, headers={"Authorization": f"Bearer {admin}"})
    assert made.status_code == 201, made.text
    arriving = [  # walking into Berlin's Mitte, then staying at home for two minutes
        _event(
            "device.sensor.gps.raw",
            name,
            {
                "timestamp": at(10 * k),
                "latitude": 52.5200 + max(0, 6 - k) * 0.001,
                "longitude": 13.4050,
                "accuracy": 10.0,
            },
        )
        for k in range(20)
    ]
    for batch in (walking[:150], walking[150:], battery, phone_use, arriving):
        answer = post_batch(client, token, batch)
        assert answer.status_code == 202, answer.text

    graph = Registry()
    for fn in (store, power, motion, apps, georegion, geocode):
        graph.add(fn.spec)
    settings = store_settings(services, ingest_settings.database_url, tmp_path)
    router = Router(graph, catalog, settings).start()
    url = settings.database_url
    expected = {
        "device_sensor_accelerometer_raw": 300,
        "device_state_power_enriched": 6,
        "device_sensor_accelerometer_windowed": 3,  # at least
        "motion_classification_activity": 3,  # at least
        "os_events_app_lifecycle_enriched": 1,
        "location_georegion_detected": 1,
        "location_address_geocoded": 1,
    }
    try:
        deadline = time.monotonic() + 120
        while any(_rows(url, t, name) < n for t, n in expected.items()):
            assert time.monotonic() < deadline, {t: _rows(url, t, name) for t in expected}
            time.sleep(0.5)
    finally:
        router.stop()
    assert sum(r.dead_lettered for r in router.runners) == 0
    with psycopg.connect(url) as conn:
        activities = conn.execute(
            "SELECT data->>'activity' FROM motion_classification_activity WHERE device_id = %s",
            (name,),
        ).fetchall()
        session = conn.execute(
            "SELECT data->>'app_identifier', (data->>'foreground_seconds')::float"
            " FROM os_events_app_lifecycle_enriched WHERE device_id = %s",
            (name,),
        ).fetchone()
        rate = conn.execute(
            "SELECT (data->>'charge_rate_pct_per_hour')::float FROM device_state_power_enriched"
            " WHERE device_id = %s ORDER BY time DESC LIMIT 1",
            (name,),
        ).fetchone()
        entered = conn.execute(
            "SELECT data->>'transition', data->>'region_name' FROM location_georegion_detected"
            " WHERE device_id = %s",
            (name,),
        ).fetchall()
        place = conn.execute(
            "SELECT data->>'city', data->>'country_code' FROM location_address_geocoded"
            " WHERE device_id = %s LIMIT 1",
            (name,),
        ).fetchone()
    assert "walking" in {a for (a,) in activities}
    assert entered == [("enter", "home")]
    assert place == ("Mitte", "DE")  # the nearest GeoNames place: Berlin-Mitte
    assert session == ("org.example.maps", 60.0)
    assert rate is not None
    assert -65 < rate[0] < -55  # two percent every two minutes: -60 %/h
