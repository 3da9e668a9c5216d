"""Fresh databases and events for the store tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from loom.db import migrate
from loom.runtime.event import Event
from loom.services import LocalServices
from loom.store.settings import StoreSettings


def fresh_database(services: LocalServices, backend: str = "partitioned") -> str:
    """A new, empty database on the session's server, migrated unless ``backend`` is ''."""
    name = f"store_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(services.postgres.url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = services.postgres.url.rsplit("/", 1)[0] + "/" + name
    if backend:
        migrate(url, backend=backend)
    return url


def store_settings(services: LocalServices, url: str, tmp: Any, **extra: Any) -> StoreSettings:
    return StoreSettings(
        database_url=url,
        kafka_bootstrap_servers=services.kafka.bootstrap_servers,
        store_blob_url=f"file://{tmp}/blobs",
        store_backend="partitioned",
        **extra,
    )


def gps(n: int, *, device: str = "phone-1", at: datetime | None = None) -> Event:
    at = at or datetime.now(UTC) - timedelta(seconds=n)
    data = {
        "device_id": device,
        "timestamp": at.isoformat(),
        "latitude": 52.0 + n / 1e6,
        "longitude": 4.0,
        "accuracy": 5.0,
        "speed": None,
    }
    return Event(type="device.sensor.gps.raw", data=data, source=f"/devices/{device}",
                 id=f"gps-{n}", time=at, device_id=device)  # fmt: skip


def heartrate(n: int, *, device: str = "phone-1", at: datetime | None = None) -> Event:
    at = at or datetime.now(UTC) - timedelta(seconds=n)
    data = {"device_id": device, "timestamp": at.isoformat(), "bpm": 60 + n % 100}
    return Event(type="device.health.heartrate.raw", data=data, source=f"/devices/{device}",
                 id=f"hr-{n}", time=at, device_id=device)  # fmt: skip


def count(url: str, table: str, where: str = "true") -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table} WHERE {where}").fetchone()
    return int(row[0]) if row else 0
