"""Stored rows as files: JSON Lines of CloudEvents, or Parquet one row group at a time.

Both encoders turn chunks of rows into bytes as they come, so an export of any
size streams to a file, a pipe or an HTTP answer without being held in memory.

JSON Lines: one CloudEvent per line, in structured-mode shape (``specversion``,
``id``, ``source``, ``type``, ``time``, ``partitionkey`` = the device, ``data``,
and ``recordedtime``, when ingest received it), so the file can be posted back
as is. Parquet: columns ``id, source, type, device_id, time, received_at,
schema_version, data`` with times as UTC microsecond timestamps and ``data`` as a
JSON string.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any, Literal

import orjson
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]

from loom.events import PARTITION_KEY
from loom.store.query import Row

__all__ = [
    "MEDIA_TYPES",
    "PARQUET_SCHEMA",
    "Format",
    "ParquetEncoder",
    "cloudevent",
    "encode",
    "jsonl",
]

Format = Literal["jsonl", "parquet"]
MEDIA_TYPES: dict[str, str] = {
    "jsonl": "application/x-ndjson",
    "parquet": "application/vnd.apache.parquet",
}
PARQUET_SCHEMA = pa.schema([
    ("id", pa.string()),
    ("source", pa.string()),
    ("type", pa.string()),
    ("device_id", pa.string()),
    ("time", pa.timestamp("us", tz="UTC")),
    ("received_at", pa.timestamp("us", tz="UTC")),
    ("schema_version", pa.string()),
    ("data", pa.string()),
])  # fmt: skip
_ROW_GROUP_ROWS = 50_000


def cloudevent(row: Row) -> dict[str, Any]:
    """A stored row as a structured-mode CloudEvent."""
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": row["id"],
        "source": row["source"],
        "type": row["type"],
        "time": row["time"],
        "datacontenttype": "application/json",
    }
    if row["device_id"] is not None:
        event[PARTITION_KEY] = row["device_id"]
    event["recordedtime"] = row["received_at"]
    event["data"] = row["data"]
    return event


def jsonl(rows: Iterable[Row]) -> bytes:
    """``rows`` as JSON Lines of CloudEvents (times in UTC, ``Z``)."""
    return b"".join(
        orjson.dumps(cloudevent(row), option=orjson.OPT_UTC_Z | orjson.OPT_APPEND_NEWLINE)
        for row in rows
    )


class _Sink(io.RawIOBase):
    """Where the Parquet writer writes: bytes kept until taken."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._position = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._parts.append(chunk)
        self._position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self._position

    def take(self) -> bytes:
        out = b"".join(self._parts)
        self._parts.clear()
        return out


class ParquetEncoder:
    """Parquet bytes as they are made: feed chunks of rows, each ``row_group_rows`` a group."""

    def __init__(self, row_group_rows: int = _ROW_GROUP_ROWS) -> None:
        self._sink = _Sink()
        self._writer = pq.ParquetWriter(self._sink, PARQUET_SCHEMA, compression="zstd")
        self._row_group_rows = row_group_rows
        self._pending: list[Row] = []

    def feed(self, rows: Sequence[Row]) -> bytes:
        """Take ``rows``; returns the bytes of every row group completed."""
        self._pending.extend(rows)
        while len(self._pending) >= self._row_group_rows:
            group = self._pending[: self._row_group_rows]
            del self._pending[: self._row_group_rows]
            self._write(group)
        return self._sink.take()

    def finish(self) -> bytes:
        """The last row group and the file's footer."""
        if self._pending:
            self._write(self._pending)
            self._pending = []
        self._writer.close()
        return self._sink.take()

    def _write(self, rows: Sequence[Row]) -> None:
        columns = {
            "id": [r["id"] for r in rows],
            "source": [r["source"] for r in rows],
            "type": [r["type"] for r in rows],
            "device_id": [r["device_id"] for r in rows],
            "time": [r["time"] for r in rows],
            "received_at": [r["received_at"] for r in rows],
            "schema_version": [r["schema_version"] for r in rows],
            "data": [orjson.dumps(r["data"]).decode() for r in rows],
        }
        self._writer.write_table(pa.table(columns, schema=PARQUET_SCHEMA))


async def encode(chunks: AsyncIterator[list[Row]], fmt: Format) -> AsyncIterator[bytes]:
    """The file of ``fmt`` made of ``chunks``, piece by piece (no empty pieces)."""
    if fmt == "jsonl":
        async for rows in chunks:
            if rows:
                yield jsonl(rows)
        return
    if fmt != "parquet":
        raise ValueError(f"unknown export format {fmt!r}: jsonl or parquet")
    encoder = ParquetEncoder()
    async for rows in chunks:
        if piece := encoder.feed(rows):
            yield piece
    yield encoder.finish()
