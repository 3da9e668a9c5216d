"""Export encoders without a database: CloudEvent lines, Parquet row groups as they fill."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import orjson
import pyarrow.parquet as pq

from loom.store.export import ParquetEncoder, cloudevent, jsonl
from loom.store.query import Row


def rows(n: int, device: str | None = "phone-1") -> list[Row]:
    start = datetime(2026, 11, 25, 8, tzinfo=UTC)
    return [
        Row(id=f"e-{i}", source="/devices/phone-1", type="device.health.heartrate.raw",
            device_id=device, time=start + timedelta(seconds=i, microseconds=7),
            received_at=start + timedelta(seconds=i + 1),
            stored_at=start + timedelta(seconds=i + 2),
            schema_version="1.0", data={"bpm": 60 + i, "note": "ü"})
        for i in range(n)
    ]  # fmt: skip


def test_jsonl_is_one_cloudevent_a_line() -> None:
    lines = jsonl(rows(2)).decode().splitlines()
    first = orjson.loads(lines[0])
    assert len(lines) == 2
    assert first == {
        "specversion": "1.0", "id": "e-0", "source": "/devices/phone-1",
        "type": "device.health.heartrate.raw", "time": "2026-11-25T08:00:00.000007Z",
        "datacontenttype": "application/json", "partitionkey": "phone-1",
        "recordedtime": "2026-11-25T08:00:01Z", "data": {"bpm": 60, "note": "ü"},
    }  # fmt: skip


def test_an_event_without_a_device_has_no_partitionkey() -> None:
    assert "partitionkey" not in cloudevent(rows(1, device=None)[0])


def test_parquet_comes_out_a_row_group_at_a_time() -> None:
    encoder = ParquetEncoder(row_group_rows=4)
    pieces = [encoder.feed(rows(3)), encoder.feed(rows(3)), encoder.feed(rows(3))]
    pieces.append(encoder.finish())
    assert len(pieces[0]) < 16  # nothing but the magic number until a group is full
    assert len(pieces[1]) > 100  # the first group, before the export ends
    table = pq.read_table(io.BytesIO(b"".join(pieces)))
    assert pq.ParquetFile(io.BytesIO(b"".join(pieces))).metadata.num_row_groups == 3
    assert table.num_rows == 9
    assert table.column_names == [
        "id", "source", "type", "device_id", "time", "received_at", "schema_version", "data",
    ]  # fmt: skip
    assert str(table.schema.field("time").type) == "timestamp[us, tz=UTC]"
    first = table.slice(0, 1).to_pylist()[0]
    assert first["time"] == datetime(2026, 11, 25, 8, 0, 0, 7, tzinfo=UTC)
    assert orjson.loads(first["data"]) == {"bpm": 60, "note": "ü"}


def test_an_empty_parquet_export_is_a_valid_file() -> None:
    encoder = ParquetEncoder()
    data = encoder.feed([]) + encoder.finish()
    assert pq.read_table(io.BytesIO(data)).num_rows == 0
