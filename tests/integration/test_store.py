"""The store against a real PostgreSQL: tables, group commit, idempotence, blobs, poison."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from pathlib import Path
from typing import Any

import psycopg
import pytest

from loom.catalog import Catalog
from loom.runtime.event import Event
from loom.runtime.invoke import PoisonEvent
from loom.services import LocalServices
from loom.store import open_store
from tests.integration.store_helpers import count, fresh_database, gps, heartrate, store_settings


@pytest.fixture
def database(services: LocalServices) -> str:
    return fresh_database(services)


def test_migrations_make_one_partitioned_table_per_stored_type(
    database: str, catalog: Catalog
) -> None:
    with psycopg.connect(database) as conn:
        tables = dict(
            conn.execute("SELECT event_type, table_name FROM loom_event_tables").fetchall()
        )
        partitioned = {
            r[0]
            for r in conn.execute(
                "SELECT c.relname FROM pg_partitioned_table p"
                " JOIN pg_class c ON c.oid = p.partrelid"
            )
        }
        gps_columns = dict(
            conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns"
                " WHERE table_name = 'device_sensor_gps_raw'"
            ).fetchall()
        )
        key = conn.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE conrelid = 'os_events_system_raw'::regclass AND contype = 'p'"
        ).fetchone()
    assert tables == {t.type: t.table for t in catalog.stored()}
    assert set(tables.values()) <= partitioned
    assert {"os_events_system_raw", "os_events_app_lifecycle_raw",
            "device_system_apps_android_raw"} <= set(tables.values())  # fmt: skip
    assert gps_columns["latitude"] == "double precision"
    assert gps_columns["data"] == "jsonb"
    assert key is not None
    assert key[0].replace('"', "") == "PRIMARY KEY (time, source, id)"


async def test_concurrent_writes_share_commits_and_land_once(
    services: LocalServices, database: str, tmp_path: Path
) -> None:
    events = [gps(n) for n in range(400)] + [heartrate(n) for n in range(200)]
    settings = store_settings(services, database, tmp_path)
    async with open_store(settings, run_migrations=False) as store:
        await asyncio.gather(*(store.writer.write(e) for e in events))
        stats = dict(vars(store.writer.stats))
        # The same events again (a redelivery, a replay): nothing new.
        await asyncio.gather(*(store.writer.write(e) for e in events[:300]))
    assert count(database, "device_sensor_gps_raw") == 400
    assert count(database, "device_health_heartrate_raw") == 200
    assert stats["inserted"] == 600
    assert stats["batches"] < 60, stats  # coalesced: far fewer commits than events
    with psycopg.connect(database) as conn:
        row = conn.execute(
            "SELECT latitude, longitude, accuracy, speed, device_id, data->>'latitude'"
            " FROM device_sensor_gps_raw WHERE id = 'gps-7'"
        ).fetchone()
        bpm = conn.execute(
            "SELECT bpm FROM device_health_heartrate_raw WHERE id = 'hr-3'"
        ).fetchone()
    assert row is not None
    assert row[:5] == (pytest.approx(52.000007), 4.0, 5.0, None, "phone-1")
    assert bpm == (63,)


async def test_a_row_the_database_refuses_fails_alone(
    services: LocalServices, database: str, tmp_path: Path
) -> None:
    bad = gps(1)
    bad.data["note"] = "nul \u0000 byte"  # valid JSON, but jsonb cannot hold U+0000
    good = [gps(n) for n in range(2, 50)]
    async with open_store(store_settings(services, database, tmp_path), run_migrations=False) as s:
        results = await asyncio.gather(*(s.writer.write(e) for e in [bad, *good]),
                                       return_exceptions=True)  # fmt: skip
    assert isinstance(results[0], PoisonEvent)
    assert "refused" in str(results[0])
    assert all(r is None for r in results[1:])
    assert count(database, "device_sensor_gps_raw") == 48


async def test_media_bytes_go_to_the_blob_store_and_the_row_keeps_a_reference(
    services: LocalServices, database: str, tmp_path: Path
) -> None:
    audio = b"RIFF" + bytes(range(256)) * 40
    event = Event(
        type="device.audio.raw",
        data={"device_id": "phone-1", "timestamp": "2026-11-25T10:00:00Z",
              "chunk_data": base64.b64encode(audio).decode(), "sample_rate": 16000,
              "channels": 1, "format": "wav", "duration_ms": 320},
        source="/devices/phone-1", id="chunk-1", device_id="phone-1",
    )  # fmt: skip
    async with open_store(store_settings(services, database, tmp_path), run_migrations=False) as s:
        await s.writer.write(event)
        await s.writer.write(event)
    with psycopg.connect(database) as conn:
        data, rate = conn.execute(
            "SELECT data, sample_rate FROM device_audio_raw WHERE id = 'chunk-1'"
        ).fetchone() or (None, None)
    ref: dict[str, Any] = data["blob_ref"]
    assert "chunk_data" not in data
    assert rate == 16000
    assert ref["sha256"] == hashlib.sha256(audio).hexdigest()
    assert ref["size_bytes"] == len(audio)
    assert ref["content_type"] == "audio/wav"
    kept = await asyncio.to_thread(Path(ref["uri"].removeprefix("file://")).read_bytes)
    assert kept == audio
    assert len(await asyncio.to_thread(list, (tmp_path / "blobs").rglob("*" + ref["sha256"]))) == 1


async def test_odd_events_are_each_sorted_out_without_holding_up_the_rest(
    services: LocalServices, database: str, tmp_path: Path
) -> None:
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    future = gps(1, at=now + timedelta(days=3))  # a device clock gone wrong: poison
    ancient = gps(2, at=now - timedelta(days=400))  # past retention: not kept, not an error
    naive = gps(3)
    naive.extensions["recordedtime"] = "2026-11-25T10:00:00"  # no offset: read as UTC
    huge = heartrate(4)
    huge.data["bpm"] = 2**63  # valid JSON, too big for the bigint column
    big = Event(type="device.metadata.raw", source="/devices/phone-1", id="meta-1",
                device_id="phone-1",
                data={"device_id": "phone-1", "timestamp": now.isoformat(),
                      "metadata_type": "counters", "metadata": {"bytes": 2**70}})  # fmt: skip
    fine = [gps(n) for n in range(10, 30)]
    async with open_store(store_settings(services, database, tmp_path), run_migrations=False) as s:
        results = await asyncio.gather(
            *(s.writer.write(e) for e in [future, ancient, naive, huge, big, *fine]),
            return_exceptions=True,
        )
    assert isinstance(results[0], PoisonEvent)
    assert "ahead" in str(results[0])
    assert results[1:3] == [None, None]
    assert isinstance(results[3], PoisonEvent)
    assert results[4:] == [None] * 21
    assert count(database, "device_sensor_gps_raw") == 21  # the naive one and the 20
    assert count(database, "device_health_heartrate_raw") == 0
    with psycopg.connect(database) as conn:
        kept = conn.execute("SELECT data->'metadata'->>'bytes' FROM device_metadata_raw").fetchone()
    assert kept == (str(2**70),)


async def test_the_store_survives_lost_staging_tables_and_missing_tables(
    services: LocalServices, database: str, tmp_path: Path
) -> None:
    async with open_store(store_settings(services, database, tmp_path), run_migrations=False) as s:
        await asyncio.gather(*(s.writer.write(gps(n)) for n in range(5)))
        # A pooler's reset (DISCARD) drops the temporary staging tables on every connection.
        async with s.pool.connection() as one, s.pool.connection() as two:
            await one.execute("DISCARD TEMP")
            await two.execute("DISCARD TEMP")
        with psycopg.connect(database, autocommit=True) as conn:
            conn.execute("DROP TABLE device_health_heartrate_raw")
            conn.execute("DELETE FROM loom_event_tables WHERE table_name = %s",
                         ("device_health_heartrate_raw",))  # fmt: skip
        results = await asyncio.gather(
            *(s.writer.write(e) for e in [heartrate(1), *(gps(n) for n in range(5, 15))]),
            return_exceptions=True,
        )
    assert isinstance(results[0], PoisonEvent)
    assert "device_health_heartrate_raw does not exist: run `loom db migrate`" in str(results[0])
    assert results[1:] == [None] * 10
    assert count(database, "device_sensor_gps_raw") == 15
