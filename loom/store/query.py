"""Reading the event store back: pages of one type, device activity, exports, deletion.

A :class:`StoreReader` answers from the tables the catalog gives each stored type
(``catalog[type].table``), or, for what spans every table (activity, deletion),
from ``loom_event_tables``, so a table the catalog no longer stores still counts.

Pages are keyset-paginated in the order ``(time, source, id)``: the cursor is the
last row's key (URL-safe base64 of JSON, opaque to callers; the table's primary
key serves the order), so a page costs the same however deep it is and no row is
repeated. A row stored meanwhile with a time before the cursor (a device sending
late) is not in the later pages: to follow new data, query again from a time.
Time ranges are half-open, ``[start, end)``; a time without an offset is taken as
UTC. Exports read with a server-side cursor in one repeatable-read
transaction: the count given up front is exactly the number of rows that follow.
"""

from __future__ import annotations

import base64
import binascii
import difflib
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypedDict

import orjson
from psycopg import AsyncConnection, AsyncServerCursor, errors, pq, sql
from psycopg.rows import DictRow, dict_row
from psycopg.types.json import set_json_loads

from loom.catalog import Catalog, default_catalog
from loom.errors import LoomError
from loom.logging import get_logger

__all__ = [
    "DEFAULT_LIMIT",
    "EXPORT_CHUNK_ROWS",
    "MAX_LIMIT",
    "BadCursor",
    "BadTimeRange",
    "DeviceActivity",
    "Export",
    "NotStored",
    "Page",
    "QueryError",
    "Row",
    "Selection",
    "StoreReader",
    "decode_cursor",
    "encode_cursor",
    "event_table_names",
    "parse_time",
]

log = get_logger(__name__)

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
EXPORT_CHUNK_ROWS = 5000
_COLUMNS = ("time", "device_id", "source", "id", "received_at", "stored_at", "schema_version")
_ORDER = sql.SQL(" ORDER BY time, source, id")


class QueryError(LoomError):
    """A read of the store that cannot be answered as asked; says which parameter and why."""


class NotStored(QueryError):
    """The type is not in the catalog, the catalog gives it no table, or the table is missing."""


class BadTimeRange(QueryError):
    """``from`` is not before ``to``, or a time is not a time."""


class BadCursor(QueryError):
    """A cursor this API did not give out, or one given out for another type."""


class Row(TypedDict):
    """A stored event: its CloudEvent attributes, when it was received and stored, its data."""

    id: str
    source: str
    type: str
    device_id: str | None
    time: datetime
    received_at: datetime
    stored_at: datetime
    schema_version: str
    data: Any


@dataclass(frozen=True)
class Page:
    items: list[Row]
    next_cursor: str | None  # None on the last page


@dataclass(frozen=True)
class DeviceActivity:
    """What the store holds of one device's events of one type."""

    device_id: str | None
    type: str
    last_time: datetime
    count: int


@dataclass(frozen=True)
class Selection:
    """The rows of one type, of one device or all, with ``start <= time < end``."""

    type: str
    table: str
    device_id: str | None = None
    start: datetime | None = None
    end: datetime | None = None

    def where(
        self, after: tuple[datetime, str, str] | None = None
    ) -> tuple[sql.Composed, list[Any]]:
        """The WHERE clause and its parameters; ``after`` is a keyset position."""
        conditions: list[sql.Composable] = [sql.SQL("true")]
        params: list[Any] = []
        if self.device_id is not None:
            conditions.append(sql.SQL("device_id = %s"))
            params.append(self.device_id)
        if self.start is not None:
            conditions.append(sql.SQL("time >= %s"))
            params.append(self.start)
        if self.end is not None:
            conditions.append(sql.SQL("time < %s"))
            params.append(self.end)
        if after is not None:
            # The plain bound lets the planner prune partitions and range-scan the index.
            conditions.append(sql.SQL("time >= %s AND (time, source, id) > (%s, %s, %s)"))
            params += [after[0], *after]
        return sql.SQL(" WHERE ") + sql.SQL(" AND ").join(conditions), params


@dataclass
class Export:
    """An export under way: ``total`` rows follow, in time order, ``chunk_rows`` at a time."""

    type: str
    total: int
    chunk_rows: int
    _cursor: AsyncServerCursor[DictRow]

    async def chunks(self) -> AsyncIterator[list[Row]]:
        while rows := await self._cursor.fetchmany(self.chunk_rows):
            yield [_row(self.type, r) for r in rows]


# ── cursors and times ──────────────────────────────────────────────────────


def encode_cursor(row: Row) -> str:
    """The opaque cursor that continues after ``row``."""
    key = {"type": row["type"], "time": row["time"].isoformat(), "source": row["source"],
           "id": row["id"]}  # fmt: skip
    return base64.urlsafe_b64encode(orjson.dumps(key)).rstrip(b"=").decode()


def decode_cursor(cursor: str, event_type: str) -> tuple[datetime, str, str]:
    """The keyset position ``(time, source, id)`` of a cursor given out for ``event_type``."""
    try:
        key = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        when = datetime.fromisoformat(key["time"])
        position = (when, key["source"], key["id"])
        kind = key["type"]
    except (binascii.Error, ValueError, orjson.JSONDecodeError, KeyError, TypeError):
        raise BadCursor(
            "the cursor is not one this API gave out: pass next_cursor from the previous page"
            " unchanged, or leave cursor out to start at the first page"
        ) from None
    if not all(isinstance(v, str) and "\x00" not in v for v in (*position[1:], kind)):
        raise BadCursor("the cursor is not one this API gave out")
    if when.tzinfo is None:
        raise BadCursor("the cursor is not one this API gave out (its time has no offset)")
    if kind != event_type:
        raise BadCursor(f"the cursor continues a query of {kind!r}, not of {event_type!r}")
    return position


def parse_time(text: str, name: str = "time") -> datetime:
    """An ISO 8601 time (``Z`` or an offset; UTC when it has none)."""
    try:
        return _utc(datetime.fromisoformat(text.strip()), name)
    except ValueError:
        raise BadTimeRange(
            f"{name} {text!r} is not an ISO 8601 time, e.g. 2026-11-25T08:00:00Z"
        ) from None


def _utc(value: datetime, name: str) -> datetime:
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:
        raise BadTimeRange(f"{name} {value.isoformat()} is out of range") from None


def _text(name: str, value: str) -> str:
    if "\x00" in value:
        raise QueryError(f"{name} cannot contain a NUL character")
    return value


def _row(event_type: str, r: Mapping[str, Any]) -> Row:
    return Row(
        id=r["id"], source=r["source"], type=event_type, device_id=r["device_id"],
        time=r["time"].astimezone(UTC), received_at=r["received_at"].astimezone(UTC),
        stored_at=r["stored_at"].astimezone(UTC), schema_version=r["schema_version"],
        data=r["data"],
    )  # fmt: skip


# ── the reader ─────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class StoreReader:
    """Queries of the event store; every method takes the connection to run on."""

    catalog: Catalog

    @classmethod
    def default(cls) -> StoreReader:
        return cls(default_catalog())

    def table(self, event_type: str) -> str:
        """The table of ``event_type``, or :class:`NotStored` saying why there is none."""
        if "\x00" in event_type or event_type not in self.catalog:
            close = difflib.get_close_matches(event_type, [t.type for t in self.catalog.stored()])
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise NotStored(f"{event_type!r} is not an event type in the catalog{hint}")
        table = self.catalog[event_type].table
        if table is None:
            raise NotStored(f"{event_type!r} is not stored: the catalog gives it no table")
        return table

    def select(
        self,
        event_type: str,
        *,
        device_id: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> Selection:
        """Check a query's parameters: the type is stored, ``start`` is before ``end``."""
        table = self.table(event_type)
        if device_id is not None:
            _text("device_id", device_id)
        start = _utc(start, "from") if start is not None else None
        end = _utc(end, "to") if end is not None else None
        if start is not None and end is not None and start >= end:
            raise BadTimeRange(
                f"from ({start.isoformat()}) must be before to ({end.isoformat()}):"
                " the range is [from, to), so it holds nothing"
            )
        return Selection(event_type, table, device_id, start, end)

    async def page(
        self,
        conn: AsyncConnection[Any],
        selection: Selection,
        *,
        limit: int = DEFAULT_LIMIT,
        cursor: str | None = None,
    ) -> Page:
        """Up to ``limit`` rows after ``cursor``, oldest first, and the cursor of the next page."""
        if not 1 <= limit <= MAX_LIMIT:
            raise QueryError(f"limit must be between 1 and {MAX_LIMIT}, not {limit}")
        after = decode_cursor(cursor, selection.type) if cursor else None
        where, params = selection.where(after)
        query = _select(selection.table) + where + _ORDER + sql.SQL(" LIMIT {}").format(limit + 1)
        async with _missing_table(selection), conn.cursor(row_factory=dict_row) as cur:
            set_json_loads(orjson.loads, cur)
            await cur.execute(query, params)
            rows = await cur.fetchall()
        items = [_row(selection.type, r) for r in rows[:limit]]
        return Page(items, encode_cursor(items[-1]) if len(rows) > limit else None)

    async def activity(
        self, conn: AsyncConnection[Any], device_id: str | None = None
    ) -> list[DeviceActivity]:
        """Per device and type: how many events are stored and the time of the last one.

        One aggregate per table in a single ``UNION ALL``; empty tables add nothing.
        """
        tables = await event_table_names(conn)
        if not tables:
            return []
        where = sql.SQL(" WHERE device_id = %(device)s" if device_id is not None else "")
        parts = [
            sql.SQL("SELECT {} AS type, device_id, max(time) AS last, count(*) AS n FROM {}{}"
                    " GROUP BY device_id").format(sql.Literal(t), sql.Identifier(name), where)
            for t, name in sorted(tables.items())
        ]  # fmt: skip
        query = sql.SQL(" UNION ALL ").join(parts) + sql.SQL(" ORDER BY device_id, type")
        params = {"device": _text("device_id", device_id)} if device_id is not None else None
        cur = await conn.execute(query, params)
        return [
            DeviceActivity(device, kind, last.astimezone(UTC), int(n))
            for kind, device, last, n in await cur.fetchall()
        ]

    @asynccontextmanager
    async def export(
        self,
        conn: AsyncConnection[Any],
        selection: Selection,
        *,
        chunk_rows: int = EXPORT_CHUNK_ROWS,
    ) -> AsyncIterator[Export]:
        """Every selected row in time order, read in chunks; the count comes first.

        Holds a transaction on ``conn`` until the block ends.
        """
        where, params = selection.where()
        outermost = conn.info.transaction_status == pq.TransactionStatus.IDLE
        async with _missing_table(selection), conn.transaction():
            if outermost:  # the count and the rows then see the same snapshot
                await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            counted = await conn.execute(
                sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(selection.table)) + where,
                params,
            )
            total = int((await counted.fetchone() or (0,))[0])
            async with conn.cursor("loom_export", row_factory=dict_row) as cur:
                set_json_loads(orjson.loads, cur)
                await cur.execute(_select(selection.table) + where + _ORDER, params)
                yield Export(selection.type, total, chunk_rows, cur)

    async def delete_device(self, conn: AsyncConnection[Any], device_id: str) -> dict[str, int]:
        """Delete every stored event of ``device_id``, in one transaction.

        Returns the rows deleted per table, naming only tables that had some. Events
        still in Kafka (or sent later) are stored again; blobs are not removed.
        """
        _text("device_id", device_id)
        deleted: dict[str, int] = {}
        async with conn.transaction():
            for name in sorted((await event_table_names(conn)).values()):
                cur = await conn.execute(
                    sql.SQL("DELETE FROM {} WHERE device_id = %s").format(sql.Identifier(name)),
                    (device_id,),
                )
                if cur.rowcount > 0:
                    deleted[name] = cur.rowcount
        log.warning("store.device_deleted", device_id=device_id, rows=sum(deleted.values()),
                    tables=sorted(deleted))  # fmt: skip
        return deleted


async def event_table_names(conn: AsyncConnection[Any]) -> dict[str, str]:
    """Every event table in the database, by event type (``loom_event_tables``)."""
    try:
        cur = await conn.execute("SELECT event_type, table_name FROM loom_event_tables")
    except errors.UndefinedTable:
        raise NotStored("the database has no event tables: run `loom db migrate`") from None
    return {kind: name for kind, name in await cur.fetchall()}


def _select(table: str) -> sql.Composed:
    columns: Iterable[sql.Composable] = map(sql.Identifier, _COLUMNS)
    return sql.SQL("SELECT {}, data FROM {}").format(
        sql.SQL(", ").join(columns), sql.Identifier(table)
    )


@asynccontextmanager
async def _missing_table(selection: Selection) -> AsyncIterator[None]:
    try:
        yield
    except errors.UndefinedTable:
        raise NotStored(
            f"{selection.type!r} has no table {selection.table!r} in this database yet:"
            " run `loom db migrate`"
        ) from None
