"""Event tables derived from the catalog, and the migrations generated from them."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from loom.catalog import Catalog, default_catalog
from loom.cli import app
from loom.db.migrate import MigrationError
from loom.store.revision import plan_revision, read_lock, write_revision
from loom.store.tables import BlobField, Column, event_tables


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return default_catalog()


def test_every_stored_type_has_a_table_named_by_the_catalog(catalog: Catalog) -> None:
    tables = event_tables(catalog)
    assert {t.name for t in tables.values()} == {t.table for t in catalog.stored()}
    assert tables["os.events.system.raw"].name == "os_events_system_raw"
    assert all(len(t.name) <= 53 for t in tables.values())  # room for "_pYYYYMMDD"


def test_hot_types_get_typed_columns_of_their_json_type(catalog: Catalog) -> None:
    tables = event_tables(catalog)
    assert tables["device.sensor.gps.raw"].columns[:2] == (
        Column("latitude", "double precision"),
        Column("longitude", "double precision"),
    )
    assert Column("bpm", "bigint") in tables["device.health.heartrate.raw"].columns
    assert Column("is_charging", "boolean") in tables["device.state.power.raw"].columns
    assert Column("text", "text") in tables["media.text.transcribed.words"].columns
    assert Column("bpm", "bigint").expression == "(data->>'bpm')::numeric::bigint"


def test_media_fields_are_found_from_the_schema(catalog: Catalog) -> None:
    tables = event_tables(catalog)
    assert tables["device.audio.raw"].blobs == (BlobField("chunk_data", "blob_ref"),)
    assert tables["media.audio.vad_filtered"].blobs == (BlobField("audio_data", "audio"),)
    assert tables["device.sensor.gps.raw"].blobs == ()


def test_partitions_are_daily_and_weekly_for_long_retention(catalog: Catalog) -> None:
    tables = event_tables(catalog)
    assert tables["device.sensor.gps.raw"].partition_interval == timedelta(days=1)
    assert tables["media.text.transcribed.words"].partition_interval == timedelta(days=7)


def test_the_checked_in_migrations_match_the_catalog(catalog: Catalog) -> None:
    plan = plan_revision(event_tables(catalog), read_lock())
    assert plan.changes == []
    result = CliRunner().invoke(app, ["db", "revision", "--check"])
    assert result.exit_code == 0, result.output


def test_a_revision_adds_new_tables_and_columns_and_keeps_dropped_ones(
    catalog: Catalog, tmp_path: Path
) -> None:
    tables = event_tables(catalog)
    first, path = write_revision(tables, "first", tmp_path)
    assert path is not None
    assert path.name == "0001_first.sql"
    assert len(first.changes) == len(tables)
    assert "SELECT loom_create_event_table('device_sensor_gps_raw'" in path.read_text()

    gps = tables["device.sensor.gps.raw"]
    grown = dict(tables)
    grown[gps.type] = replace(gps, columns=(*gps.columns, Column("note", "text")))
    del grown["os.events.system.raw"]
    second, path = write_revision(grown, "second", tmp_path)
    assert path is not None
    assert path.name == "0002_second.sql"
    assert second.changes == [
        "add column device_sensor_gps_raw.note",
        "stop storing os_events_system_raw",
    ]
    sql = path.read_text()
    assert "ALTER TABLE device_sensor_gps_raw ADD COLUMN note text;" in sql
    assert "UPDATE device_sensor_gps_raw SET note = data->>'note';" in sql
    assert write_revision(grown, "third", tmp_path) == (plan_revision(grown, read_lock(tmp_path)),
                                                        None)  # fmt: skip


def test_a_column_that_changes_type_needs_a_hand_written_migration(
    catalog: Catalog, tmp_path: Path
) -> None:
    tables = event_tables(catalog)
    write_revision(tables, "first", tmp_path)
    gps = tables["device.sensor.gps.raw"]
    changed = {**tables, gps.type: replace(gps, columns=(Column("latitude", "text"),))}
    with pytest.raises(MigrationError, match="latitude changes type"):
        plan_revision(changed, read_lock(tmp_path))
