"""Motion end to end on the local runner: an accelerometer sample posted to ingest, to
the windowed-features row in PostgreSQL that the sample completed.

A phone posts one sample per request at 25 Hz, in real time, for ``SECONDS``; the
router runs ``motion`` and ``store`` from Kafka (consumer groups, per-device state in
PostgreSQL) as ``loom dev`` does. For each stored window, the latency is the window
row's ``stored_at`` minus the moment the sample that closed the window (the first one
at or past its end) was answered by ingest (202: in Kafka). Same machine, same clock.
Goal: p95 < 300 ms.
"""

from __future__ import annotations

import math
import statistics
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from fastapi.testclient import TestClient

from loom.catalog import default_catalog
from loom.db import migrate
from loom.kafka import create_topics
from loom.runtime.registry import Registry
from loom.runtime.router import Router
from loom.services import LocalServices

TITLE = "Motion end to end: sample posted to ingest -> windowed-features row (local runner)"
SECONDS = 20
RATE_HZ = 25


def run(services: LocalServices) -> list[dict[str, Any]]:
    from functions.ingest import IngestSettings, create_app
    from functions.ingest.auth import create_admin_token
    from functions.motion.handler import handle as motion
    from functions.store.handler import handle as store
    from loom.store.settings import StoreSettings

    name = f"e2e_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(services.postgres.url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = services.postgres.url.rsplit("/", 1)[0] + "/" + name
    shared = {
        "kafka_bootstrap_servers": services.kafka.bootstrap_servers,
        "database_url": url,
        "kafka_topic_prefix": name,
    }
    settings = StoreSettings(**shared, store_blob_url=f"file://{Path('/tmp') / name}")
    migrate(url, backend="partitioned")
    catalog = default_catalog()
    create_topics(catalog, settings)
    admin = create_admin_token(url, "bench")

    graph = Registry()
    graph.add(motion.spec)
    graph.add(store.spec)
    router = Router(graph, catalog, settings).start()
    answered: list[tuple[datetime, float]] = []  # (sample time, wall clock of its 202)
    try:
        with TestClient(create_app(IngestSettings(**shared))) as client:
            while client.get("/readyz").status_code != 200:
                time.sleep(0.2)
            auth = {"Authorization": f"Bearer {admin}"}
            token = client.post(
                "/devices", json={"device_id": "bench-phone", "name": "phone"}, headers=auth
            ).json()["token"]
            headers = {
                "Authorization": f"Bearer {token}",
                "ce-specversion": "1.0",
                "ce-source": "/bench",
                "ce-type": "device.sensor.accelerometer.raw",
                "content-type": "application/json",
            }
            time.sleep(3)  # the router's consumer groups join
            started = time.monotonic()
            for i in range(SECONDS * RATE_HZ):
                time.sleep(max(0.0, started + i / RATE_HZ - time.monotonic()))
                at = datetime.now(UTC)
                data = {
                    "device_id": "bench-phone",
                    "timestamp": at.isoformat(),
                    "x": 0.3,
                    "y": 9.81 + 2.5 * math.sin(2 * math.pi * 2 * i / RATE_HZ),
                    "z": 0.8 * math.cos(2 * math.pi * 2 * i / RATE_HZ),
                }
                answer = client.post(
                    "/",
                    json=data,
                    headers={**headers, "ce-id": str(uuid.uuid4()), "ce-time": at.isoformat()},
                )
                assert answer.status_code == 202, answer.text
                answered.append((at, time.time()))
            time.sleep(3)
    finally:
        router.stop()
    with psycopg.connect(url) as conn:
        windows = conn.execute(
            "SELECT (data->>'window_end')::timestamptz, stored_at"
            " FROM device_sensor_accelerometer_windowed ORDER BY 1"
        ).fetchall()
    latencies = []
    for window_end, stored_at in windows:
        closing = next((wall for at, wall in answered if at >= window_end), None)
        if closing is not None:
            latencies.append((stored_at.timestamp() - closing) * 1000)
    latencies.sort()
    p95 = latencies[int(0.95 * (len(latencies) - 1))]
    return [
        {
            "measure": f"windows stored ({SECONDS} s of 25 Hz samples, one POST each)",
            "value": float(len(latencies)),
            "unit": "windows",
            "goal": "",
        },
        {
            "measure": "post -> windowed row, p50",
            "value": statistics.median(latencies),
            "unit": "ms",
            "goal": "",
        },
        {
            "measure": "post -> windowed row, p95",
            "value": p95,
            "unit": "ms",
            "goal": f"< 300 ms: {'met' if p95 < 300 else 'NOT met'}",
        },
        {"measure": "post -> windowed row, max", "value": latencies[-1], "unit": "ms", "goal": ""},
    ]
