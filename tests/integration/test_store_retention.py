"""Retention on both storage paths: native partitions for real, TimescaleDB's SQL by stubs."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from loom.catalog import Catalog
from loom.cli import app
from loom.db import migrate
from loom.services import LocalServices
from loom.store import event_tables, maintain, open_store
from tests.integration.store_helpers import count, fresh_database, gps, heartrate, store_settings

DAYS_AGO = (1, 10, 20, 25, 28)  # all within GPS's 30 days, so all stored


async def _write_history(services: LocalServices, url: str, tmp: Path, now: datetime) -> None:
    events = []
    for n, days in enumerate(DAYS_AGO):
        at = now - timedelta(days=days, hours=1)
        events += [gps(n * 10 + i, at=at + timedelta(minutes=i)) for i in range(10)]
        events += [heartrate(n * 10 + i, at=at + timedelta(minutes=i)) for i in range(10)]
    async with open_store(store_settings(services, url, tmp), run_migrations=False) as store:
        await asyncio.gather(*(store.writer.write(e) for e in events))


def _ages(url: str, table: str, now: datetime) -> list[int]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(f"SELECT DISTINCT time FROM {table}").fetchall()
    return sorted({(now - t).days for (t,) in rows})


async def test_maintenance_drops_what_is_past_retention_and_keeps_the_rest(
    services: LocalServices, catalog: Catalog, tmp_path: Path
) -> None:
    url = fresh_database(services)
    now = datetime.now(UTC)
    await _write_history(services, url, tmp_path, now)  # partitions made as the rows need them
    assert _ages(url, "device_sensor_gps_raw", now) == list(DAYS_AGO)

    tables = event_tables(catalog)
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        today = await maintain(conn, tables, now=now)
        assert today.dropped == {}
        # Partitions for the next days exist before any row needs them.
        tomorrow = (now + timedelta(days=1)).strftime("%Y%m%d")
        assert f"device_sensor_gps_raw_p{tomorrow}" in today.created

        # 8 days on: GPS (kept 30 days) loses its 25- and 28-day-old rows; heart rate
        # (kept 60) loses nothing.
        report = await maintain(conn, tables, now=now + timedelta(days=8))
        assert _ages(url, "device_sensor_gps_raw", now) == [1, 10, 20]
        assert _ages(url, "device_health_heartrate_raw", now) == list(DAYS_AGO)
        assert sum(n for p, n in report.dropped.items() if "gps" in p) == 20
        assert not [p for p in report.dropped if "heartrate" in p]

        # 40 days on: GPS keeps nothing, heart rate what is younger than 60 days.
        later = await maintain(conn, tables, now=now + timedelta(days=40))
    assert _ages(url, "device_sensor_gps_raw", now) == []
    assert _ages(url, "device_health_heartrate_raw", now) == [1, 10, 20]
    assert count(url, "device_health_heartrate_raw") == 30
    assert sum(later.dropped.values()) == 30 + 20


def test_loom_db_maintain_reports_what_it_dropped(
    services: LocalServices, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = fresh_database(services)
    now = datetime.now(UTC)
    asyncio.run(_write_history(services, url, tmp_path, now))
    monkeypatch.setenv("LOOM_DATABASE_URL", url)
    later = (now + timedelta(days=8)).strftime("%Y-%m-%dT%H:%M:%S")
    result = CliRunner().invoke(app, ["db", "maintain", "--now", later])
    assert result.exit_code == 0, result.output
    assert "20 rows past retention" in result.output.replace(",", "")
    assert _ages(url, "device_sensor_gps_raw", now) == [1, 10, 20]


# Stand-ins for the TimescaleDB functions Loom calls: each records its call, so the test
# sees the SQL the TimescaleDB path emits without the extension (not installable here).
TIMESCALE_STUBS = """
CREATE SCHEMA timescaledb_information;
CREATE TABLE timescaledb_information.jobs (proc_name text, hypertable_name text, config jsonb);
CREATE TABLE timescale_calls (n serial, call text);
CREATE FUNCTION create_hypertable(t regclass, c name, chunk_time_interval interval)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO timescale_calls (call) VALUES (format('create_hypertable(%s, %s, %s)', t, c,
                                                      chunk_time_interval)) $$;
CREATE FUNCTION add_retention_policy(t regclass, drop_after interval) RETURNS int
LANGUAGE sql AS $$
    INSERT INTO timescale_calls (call) VALUES (format('add_retention_policy(%s, %s)', t,
                                                      drop_after));
    INSERT INTO timescaledb_information.jobs VALUES ('policy_retention', t::text,
        jsonb_build_object('drop_after', drop_after::text));
    SELECT 1 $$;
CREATE FUNCTION remove_retention_policy(t regclass) RETURNS void LANGUAGE sql AS $$
    INSERT INTO timescale_calls (call) VALUES (format('remove_retention_policy(%s)', t));
    DELETE FROM timescaledb_information.jobs
     WHERE hypertable_name = t::text AND proc_name = 'policy_retention' $$;
CREATE FUNCTION add_compression_policy(t regclass, compress_after interval) RETURNS int
LANGUAGE sql AS $$
    INSERT INTO timescale_calls (call) VALUES (format('add_compression_policy(%s, %s)', t,
                                                      compress_after));
    INSERT INTO timescaledb_information.jobs VALUES ('policy_compression', t::text, '{}');
    SELECT 1 $$;
"""
# Replaces the migration's own, which runs ALTER TABLE … SET (timescaledb.compress).
COMPRESSION_STUB = """
CREATE OR REPLACE FUNCTION loom_enable_compression(tbl regclass) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO timescale_calls (call) VALUES (format('enable_compression(%s)', tbl)) $$;
"""


async def test_the_timescaledb_path_makes_hypertables_and_policies_from_the_catalog(
    services: LocalServices, catalog: Catalog
) -> None:
    url = fresh_database(services, backend="")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(TIMESCALE_STUBS)
    migrate(url, backend="timescaledb")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(COMPRESSION_STUB)
    tables = event_tables(catalog)
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        report = await maintain(conn, tables)
        again = await maintain(conn, tables)  # nothing left to do
        cur = await conn.execute("SELECT call FROM timescale_calls ORDER BY n")
        calls = [row[0] for row in await cur.fetchall()]
        cur = await conn.execute(
            "SELECT count(*) FROM pg_partitioned_table p JOIN loom_event_tables e"
            " ON p.partrelid = e.table_name::regclass"
        )
        partitioned = (await cur.fetchone() or (0,))[0]
        cur = await conn.execute("SELECT DISTINCT backend FROM loom_event_tables")
        backends = await cur.fetchall()
    assert backends == [("timescaledb",)]
    assert partitioned == 0  # hypertables are plain tables that TimescaleDB chunks
    stored = catalog.stored()
    assert sum(c.startswith("create_hypertable(") for c in calls) == len(stored)
    assert "create_hypertable(media_text_transcribed_words, time, 7 days)" in calls
    assert "add_retention_policy(device_sensor_gps_raw, 30 days)" in calls
    assert "add_retention_policy(device_health_heartrate_raw, 60 days)" in calls
    gps_calls = [c for c in calls if "(device_sensor_gps_raw" in c]
    assert gps_calls == [
        "create_hypertable(device_sensor_gps_raw, time, 1 day)",
        "add_retention_policy(device_sensor_gps_raw, 30 days)",
        "enable_compression(device_sensor_gps_raw)",
        "add_compression_policy(device_sensor_gps_raw, 2 days)",
    ]
    assert sum(c.startswith("add_retention_policy(") for c in calls) == len(stored)
    assert len(report.policies) >= len(stored)
    assert again.policies == []


async def test_maintenance_skips_a_table_in_use_instead_of_stalling_its_writers(
    services: LocalServices, catalog: Catalog, tmp_path: Path
) -> None:
    url = fresh_database(services)
    now = datetime.now(UTC)
    await _write_history(services, url, tmp_path, now)
    with psycopg.connect(url) as reader:  # a long read (an export, say) holds the table
        reader.execute("SELECT count(*) FROM device_sensor_gps_raw").fetchone()
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            report = await maintain(conn, event_tables(catalog), now=now + timedelta(days=8))
    assert "device_sensor_gps_raw" in report.busy
    assert _ages(url, "device_sensor_gps_raw", now) == list(DAYS_AGO)  # left for next round
    assert not [p for p in report.dropped if "gps" in p]


async def test_maintenance_prunes_the_command_audit_past_the_responses_retention(
    services: LocalServices, catalog: Catalog
) -> None:
    url = fresh_database(services)
    now = datetime.now(UTC)
    with psycopg.connect(url) as conn:
        conn.execute("INSERT INTO devices (device_id, name) VALUES ('laptop-1', 'Laptop')")
        for seq, days in enumerate((1, 29, 31, 90), start=1):
            conn.execute(
                "INSERT INTO device_commands (command_id, device_id, sequence, type, source,"
                " data, issued_by, issued_at, expires_at, status) VALUES (%s, 'laptop-1', %s,"
                " 'device.command.app.launch', '/loom/ingest', '{}', 'admin', %s, %s, 'acked')",
                (f"c{seq}", seq, now - timedelta(days=days), now - timedelta(days=days - 1)),
            )
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        report = await maintain(conn, event_tables(catalog), now=now)
    assert report.pruned == {"device_commands": 2}  # device.response.* are kept 30 days
    with psycopg.connect(url) as conn:
        kept = conn.execute("SELECT command_id FROM device_commands ORDER BY 1").fetchall()
    assert kept == [("c1",), ("c2",)]
