"""Query parameters checked without a database: types, time ranges, cursors."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta, timezone

import pytest

from loom.catalog import default_catalog
from loom.store.query import (
    BadCursor,
    BadTimeRange,
    NotStored,
    QueryError,
    Row,
    StoreReader,
    decode_cursor,
    encode_cursor,
    parse_time,
)

GPS = "device.sensor.gps.raw"


def row(**changes: object) -> Row:
    base = Row(
        id="gps-1", source="/devices/phone-1", type=GPS, device_id="phone-1",
        time=datetime(2026, 11, 25, 8, 15, 30, 123456, tzinfo=UTC),
        received_at=datetime(2026, 11, 25, 8, 15, 31, tzinfo=UTC),
        stored_at=datetime(2026, 11, 25, 8, 15, 32, tzinfo=UTC),
        schema_version="1.0", data={"latitude": 52.5},
    )  # fmt: skip
    return Row(**{**base, **changes})  # type: ignore[typeddict-item]


def test_a_cursor_gives_back_the_key_of_its_row_to_the_microsecond() -> None:
    cursor = encode_cursor(row())
    assert "=" not in cursor
    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert decode_cursor(cursor, GPS) == (row()["time"], "/devices/phone-1", "gps-1")


def test_a_cursor_keeps_odd_sources_and_ids() -> None:
    odd = row(source="/devices/ü/ä?x=1&y", id="a/b+c==")
    assert decode_cursor(encode_cursor(odd), GPS)[1:] == ("/devices/ü/ä?x=1&y", "a/b+c==")


@pytest.mark.parametrize(
    "cursor",
    [
        "not base64!",
        "e30",  # {}
        base64.urlsafe_b64encode(b"[1, 2]").decode(),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
        base64.urlsafe_b64encode(
            b'{"type": "device.sensor.gps.raw", "time": "yesterday", "source": "s", "id": "i"}'
        ).decode(),
        base64.urlsafe_b64encode(
            b'{"type": "device.sensor.gps.raw", "time": "2026-01-01T00:00:00", "source": "s",'
            b' "id": "i"}'
        ).decode(),
        base64.urlsafe_b64encode(
            b'{"type": "device.sensor.gps.raw", "time": "2026-01-01T00:00:00Z", "source": 1,'
            b' "id": "i"}'
        ).decode(),
    ],
)
def test_a_cursor_this_api_did_not_give_out_is_refused(cursor: str) -> None:
    with pytest.raises(BadCursor, match="not one this API gave out"):
        decode_cursor(cursor, GPS)


def test_a_cursor_of_another_type_is_refused_naming_both() -> None:
    with pytest.raises(BadCursor, match=r"device\.sensor\.gps\.raw.*not of 'device\.health"):
        decode_cursor(encode_cursor(row()), "device.health.heartrate.raw")


def test_times_are_iso_8601_and_utc_without_an_offset() -> None:
    assert parse_time("2026-11-25T08:00:00Z") == datetime(2026, 11, 25, 8, tzinfo=UTC)
    assert parse_time("2026-11-25T09:00:00+01:00") == datetime(2026, 11, 25, 8, tzinfo=UTC)
    assert parse_time("2026-11-25") == datetime(2026, 11, 25, tzinfo=UTC)
    with pytest.raises(BadTimeRange, match="--from 'tuesday' is not an ISO 8601 time"):
        parse_time("tuesday", "--from")


def test_select_names_unknown_and_unstored_types() -> None:
    reader = StoreReader(default_catalog())
    with pytest.raises(NotStored, match="not an event type in the catalog; did you mean"):
        reader.select("device.sensor.gps.rawr")
    unstored = next(t.type for t in default_catalog() if not t.stored)
    with pytest.raises(NotStored, match="is not stored: the catalog gives it no table"):
        reader.select(unstored)


def test_select_derives_the_table_and_wants_from_before_to() -> None:
    reader = StoreReader(default_catalog())
    at = datetime(2026, 11, 25, 8, tzinfo=timezone(timedelta(hours=2)))
    selection = reader.select(GPS, device_id="phone-1", start=at, end=at.replace(tzinfo=None))
    assert selection.table == default_catalog()[GPS].table
    assert selection.start == datetime(2026, 11, 25, 6, tzinfo=UTC)  # 08:00+02:00
    assert selection.end == datetime(2026, 11, 25, 8, tzinfo=UTC)  # no offset: UTC
    with pytest.raises(BadTimeRange, match=r"must be before to.*\[from, to\)"):
        reader.select(GPS, start=at, end=at)
    with pytest.raises(QueryError, match="device_id cannot contain a NUL"):
        reader.select(GPS, device_id="a\x00b")
