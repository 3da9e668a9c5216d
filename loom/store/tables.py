"""The event tables, derived from the catalog: one per stored type.

Every table has the same common columns (below), the primary key
``(time, source, id)`` (a CloudEvent is unique by source + id; the time is in the
key because tables are partitioned by it, and first so that new rows go to the end of
the index and pages read in time order use it) and an index on ``(device_id, time)``.
Types with ``columns`` in the catalog also get a typed column per listed field,
whose SQL type follows the field's JSON Schema type. Media bytes never go in a
row: a base64 field with a blob-reference sibling (the schema's ``oneOf``) is
moved to the blob store and the row keeps the reference.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from loom.catalog import COMMON_COLUMN_NAMES, Catalog, EventType, column_json_types

__all__ = [
    "COMMON_COLUMNS",
    "BlobField",
    "Column",
    "EventTable",
    "event_tables",
]

# name, SQL type, what it holds
COMMON_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("time", "timestamptz NOT NULL", "the CloudEvent's time (when it happened)"),
    ("device_id", "text", "the device (the partitionkey extension), if any"),
    ("source", "text NOT NULL", "the CloudEvent's source"),
    ("id", "text NOT NULL", "the CloudEvent's id, unique per source"),
    ("received_at", "timestamptz NOT NULL DEFAULT now()", "when ingest recorded it"),
    ("stored_at", "timestamptz NOT NULL DEFAULT now()", "when the store committed it"),
    ("schema_version", "text NOT NULL", "version of the data's JSON Schema"),
    ("data", "jsonb NOT NULL", "the event's data (media bytes replaced by blob references)"),
)

assert {name for name, _, _ in COMMON_COLUMNS} == COMMON_COLUMN_NAMES

_SQL_TYPES = {
    "number": "double precision",
    "integer": "bigint",
    "boolean": "boolean",
    "string": "text",
}
_CASTS = {
    "double precision": "(data->>'{f}')::double precision",
    "bigint": "(data->>'{f}')::numeric::bigint",
    "boolean": "(data->>'{f}')::boolean",
    "text": "data->>'{f}'",
    "timestamptz": "(data->>'{f}')::timestamptz",
}


@dataclass(frozen=True)
class Column:
    """A typed column filled from a top-level field of ``data``."""

    name: str
    sql_type: str

    @property
    def expression(self) -> str:
        """SQL that computes the column from ``data`` (JSON null gives SQL NULL)."""
        return _CASTS[self.sql_type].format(f=self.name)


@dataclass(frozen=True)
class BlobField:
    """``data[inline]`` holds base64 bytes; the store moves them out to ``data[ref]``."""

    inline: str
    ref: str


@dataclass(frozen=True)
class EventTable:
    name: str
    type: str
    retention: timedelta
    columns: tuple[Column, ...] = ()
    blobs: tuple[BlobField, ...] = ()
    description: str = ""

    @property
    def partition_interval(self) -> timedelta:
        """One partition (or TimescaleDB chunk) per day; a week for long retention."""
        return timedelta(days=1) if self.retention <= timedelta(days=90) else timedelta(days=7)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(name for name, _, _ in COMMON_COLUMNS) + tuple(c.name for c in self.columns)


def _column(event_type: EventType, name: str) -> Column:
    prop = event_type.data_schema["properties"][name]
    (kind,) = column_json_types(prop)
    sql_type = _SQL_TYPES[kind]
    if kind == "string" and prop.get("format") == "date-time":
        sql_type = "timestamptz"
    return Column(name, sql_type)


def _blob_fields(schema: Mapping[str, Any]) -> tuple[BlobField, ...]:
    """Pairs ``oneOf: [{required: [a]}, {required: [b]}]`` of a base64 and a reference."""
    props = schema.get("properties", {})

    def is_base64(name: str) -> bool:
        return bool(props.get(name, {}).get("contentEncoding") == "base64")

    def is_ref(name: str) -> bool:
        return {"uri", "sha256"} <= set(props.get(name, {}).get("required", ()))

    found = []
    for alternative in schema.get("oneOf", ()):
        names = [n for a in schema["oneOf"] for n in a.get("required", ())]
        for name in alternative.get("required", ()):
            refs = [n for n in names if is_ref(n)]
            if is_base64(name) and len(refs) == 1:
                found.append(BlobField(inline=name, ref=refs[0]))
    return tuple(found)


def event_tables(catalog: Catalog) -> dict[str, EventTable]:
    """Every stored type's table, by type."""
    tables = {}
    for t in catalog.stored():
        assert t.table is not None
        tables[t.type] = EventTable(
            name=t.table,
            type=t.type,
            retention=t.retention,
            columns=tuple(_column(t, name) for name in t.columns),
            blobs=_blob_fields(catalog.bundled_schema(t.type)),
            description=t.description,
        )
    return tables
