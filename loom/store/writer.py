"""Group commit: many concurrent writers, one ``COPY`` per table, one commit.

``await writer.write(event)`` returns once the event's row is committed (or was
already there). Meanwhile other calls queue up; a flusher takes everything queued
(up to ``max_rows``), and in one transaction per batch copies each table's rows
into a temporary staging table and moves them with ``INSERT … SELECT … ON
CONFLICT DO NOTHING`` (the primary key is source + id + time, so redeliveries and
replays add nothing). With ``connections`` flushers, that many batches commit in
parallel. Under light load a batch is one row and nothing waits; under load a
flusher first waits ``linger`` (2 ms) for company, and the batches grow.

Failures are sorted out per event, never per batch: a row the database refuses
(a value it cannot hold) fails only its own caller with :class:`PoisonEvent`; a
database that cannot be reached fails the whole batch with :class:`StoreUnavailable`
and its callers try again later.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from prometheus_client import Counter, Histogram
from psycopg import AsyncConnection, errors, sql
from psycopg_pool import AsyncConnectionPool

from loom.logging import get_logger
from loom.runtime.event import Event
from loom.runtime.invoke import PoisonEvent, Unavailable
from loom.store.blobs import BlobStore
from loom.store.partitions import TableInfo, ensure_partitions, load_table_info, partition_start
from loom.store.rows import expired, make_row, move_blobs
from loom.store.tables import EventTable

__all__ = ["GroupCommitWriter", "StoreUnavailable", "WriteStats"]

log = get_logger(__name__)

_STAGED = ("time", "device_id", "source", "id", "received_at", "schema_version", "data")
_STAGE_TYPES = ["timestamptz", "text", "text", "text", "timestamptz", "text", "jsonb"]
# What means "this database", not "these rows": the batch waits and is tried again.
_CONNECTION_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError, OSError, TimeoutError)


ROWS = Counter("loom_store_rows_total", "Rows the store was given, by table and outcome "
               "(inserted, duplicate, refused, unavailable).", ["table", "outcome"])  # fmt: skip
COMMIT_ROWS = Histogram("loom_store_commit_rows", "Rows per group commit.",
                        buckets=(1, 10, 50, 100, 500, 1000, 2500, 5000, 10000))  # fmt: skip
COMMIT_SECONDS = Histogram("loom_store_commit_seconds", "Time of one group commit.")


class StoreUnavailable(Unavailable):
    """The database cannot be reached or gave up; the events were not stored."""


@dataclass
class WriteStats:
    batches: int = 0
    rows: int = 0
    inserted: int = 0
    refused: int = 0
    largest_batch: int = 0


@dataclass
class _Pending:
    table: EventTable
    row: tuple[Any, ...]
    done: asyncio.Future[None]


@dataclass
class GroupCommitWriter:
    pool: AsyncConnectionPool
    tables: Mapping[str, EventTable]  # by event type
    blobs: BlobStore
    max_rows: int = 5000
    connections: int = 2
    schema_versions: Mapping[str, str] = field(default_factory=dict)  # by type, the catalog's
    linger: float = 0.002  # seconds a flusher waits for company under load
    stats: WriteStats = field(default_factory=WriteStats)
    _pending: deque[_Pending] = field(default_factory=deque)
    _wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    _flushers: list[asyncio.Task[None]] = field(default_factory=list)
    _info: dict[str, TableInfo] = field(default_factory=dict)
    _known_partitions: dict[str, set[datetime]] = field(default_factory=dict)
    _closing: bool = False
    _in_flight: int = 0
    _last_batch: int = 0
    _stages: weakref.WeakKeyDictionary[AsyncConnection, set[str]] = field(
        default_factory=weakref.WeakKeyDictionary
    )
    _idle: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> None:
        self._flushers = [
            asyncio.create_task(self._flush_forever(), name=f"store-flusher-{n}")
            for n in range(self.connections)
        ]

    async def close(self) -> None:
        """Commit what is queued, then stop the flushers."""
        self._closing = True
        if self._pending or self._in_flight:
            try:
                await asyncio.wait_for(self._idle.wait(), timeout=30)
            except TimeoutError:
                log.error("store.close_timeout", queued=len(self._pending))
        for task in self._flushers:
            task.cancel()
        await asyncio.gather(*self._flushers, return_exceptions=True)
        for pending in self._pending:
            if not pending.done.done():
                pending.done.set_exception(StoreUnavailable("the store is shutting down"))

    # ── the caller's side ──────────────────────────────────────────────────
    async def write(self, event: Event) -> None:
        """Store ``event``; returns after the commit that holds its row."""
        if self._closing:
            raise StoreUnavailable("the store is shutting down")
        table = self.tables.get(event.type)
        if table is None:
            raise PoisonEvent(f"{event.type!r} has no table: the catalog does not store it")
        if expired(event, table, datetime.now(UTC)):
            ROWS.labels(table.name, "expired").inc()
            return  # past retention: maintenance would drop it at once
        row = await self._row(event, table)
        if self._closing:
            raise StoreUnavailable("the store is shutting down")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(table, row, done))
        self._idle.clear()
        self._wakeup.set()
        await done

    async def _row(self, event: Event, table: EventTable) -> tuple[Any, ...]:
        data = event.data
        if table.blobs and isinstance(data, dict):
            try:
                data = await asyncio.to_thread(move_blobs, data, table, self.blobs)
            except PoisonEvent:
                raise
            except Exception as exc:  # a full disk, an S3 outage: not the event's fault
                log.warning("store.blobs_unavailable", table=table.name, error=repr(exc))
                raise StoreUnavailable(f"the blob store is unavailable: {exc!r}") from exc
        return make_row(event, data, self.schema_versions.get(event.type, "1.0"))

    # ── the flushers ───────────────────────────────────────────────────────
    async def _flush_forever(self) -> None:
        while True:
            await self._wakeup.wait()
            await asyncio.sleep(0)  # let every caller that is ready queue its row first
            if self.linger and 1 < len(self._pending) * 2 < self._last_batch:
                # Rows are coming in, but fewer than last time (callers over the network):
                # wait a moment for more, like PostgreSQL's commit_delay. Idle: no wait.
                await asyncio.sleep(self.linger)
            batch = [self._pending.popleft() for _ in range(min(self.max_rows, len(self._pending)))]
            if not self._pending:
                self._wakeup.clear()
            if batch:
                self._last_batch = len(batch)
                self._in_flight += 1
                try:
                    await self._flush(batch)
                finally:
                    self._in_flight -= 1
            if not self._pending and not self._in_flight:
                self._idle.set()

    async def _flush(self, batch: list[_Pending]) -> None:
        started = time.perf_counter()
        try:
            async with self.pool.connection() as conn:
                refused, inserted = await self._commit(conn, batch)
        except asyncio.CancelledError:  # shutting down: nobody may be left waiting
            _fail(batch, StoreUnavailable("the store is shutting down"))
            raise
        except Exception as exc:
            if isinstance(exc, _CONNECTION_ERRORS):
                log.warning("store.unavailable", rows=len(batch), error=str(exc))
                failure = StoreUnavailable(f"the database is unavailable: {exc}")
            else:  # a bug: it must fail the callers, not leave them waiting
                log.exception("store.flush_failed", rows=len(batch))
                failure = StoreUnavailable(f"store failed: {exc!r}")
            for pending in batch:
                ROWS.labels(pending.table.name, "unavailable").inc()
            _fail(batch, failure)
            return
        COMMIT_SECONDS.observe(time.perf_counter() - started)
        COMMIT_ROWS.observe(len(batch))
        self.stats.batches += 1
        self.stats.rows += len(batch)
        self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
        given: dict[str, int] = {}
        for pending in batch:
            reason = refused.get(id(pending))
            if reason is None:
                given[pending.table.name] = given.get(pending.table.name, 0) + 1
                if not pending.done.done():
                    pending.done.set_result(None)
                continue
            self.stats.refused += 1
            ROWS.labels(pending.table.name, "refused").inc()
            if not pending.done.done():
                pending.done.set_exception(PoisonEvent(f"the database refused the row: {reason}"))
        for table, rows in given.items():
            ROWS.labels(table, "inserted").inc(inserted.get(table, 0))
            ROWS.labels(table, "duplicate").inc(rows - inserted.get(table, 0))
            self.stats.inserted += inserted.get(table, 0)

    async def _commit(
        self, conn: AsyncConnection, batch: list[_Pending]
    ) -> tuple[dict[int, str], dict[str, int]]:
        """One transaction for the batch; returns the rows refused (with why) and how
        many rows each table gained (the others were there already). Only a database
        that cannot be reached fails the whole batch."""
        groups: dict[str, list[_Pending]] = {}
        for pending in batch:
            groups.setdefault(pending.table.type, []).append(pending)
        refused: dict[int, str] = {}
        ready: list[list[_Pending]] = []
        for rows in groups.values():
            missing = await self._partitions_for(conn, rows)
            for pending in rows if missing else ():
                refused[id(pending)] = missing or ""
            if not missing:
                ready.append(rows)
        await self._stages_for(conn, [rows[0].table for rows in ready])
        try:
            return refused, await self._copy_all(conn, ready)
        except _CONNECTION_ERRORS:
            raise
        except errors.UndefinedTable as exc:
            # A staging table we made is gone (DISCARD, a pooler's reset), or a table was
            # dropped under us: make the stages again and go row by row.
            log.warning("store.table_missing", rows=len(batch), error=str(exc))
            self._stages.pop(conn, None)
            self._info = {}
            await self._stages_for(conn, [rows[0].table for rows in ready])
        except Exception as exc:
            if isinstance(exc, errors.CheckViolation) and "partition" in str(exc):
                self._known_partitions.clear()  # maintenance dropped one we thought was there
                raise psycopg.OperationalError(f"partition missing: {exc}") from exc
            log.warning("store.batch_refused", rows=len(batch), error=str(exc))
        # One row at a time, each in a savepoint: the rows the database refuses are poison,
        # the others are stored.
        inserted: dict[str, int] = {}
        async with conn.transaction():
            for pending in (p for rows in ready for p in rows):
                name = pending.table.name
                try:
                    async with conn.transaction():
                        added = await self._copy(conn, pending.table, [pending.row])
                    inserted[name] = inserted.get(name, 0) + added
                except _CONNECTION_ERRORS:
                    raise
                except Exception as row_exc:  # noqa: BLE001 - whatever it is, it is this row's
                    refused[id(pending)] = str(row_exc).splitlines()[0] or repr(row_exc)
        return refused, inserted

    async def _copy_all(
        self, conn: AsyncConnection, groups: list[list[_Pending]]
    ) -> dict[str, int]:
        inserted: dict[str, int] = {}
        async with conn.transaction():
            for rows in groups:
                table = rows[0].table
                inserted[table.name] = await self._copy(conn, table, [p.row for p in rows])
        return inserted

    async def _copy(
        self, conn: AsyncConnection, table: EventTable, rows: list[tuple[Any, ...]]
    ) -> int:
        """Stage ``rows`` with a binary COPY and move the new ones in; returns how many
        were new."""
        stage = sql.Identifier(f"loom_stage_{table.name}")
        cur = conn.cursor()
        copy_sql = sql.SQL("COPY {} FROM STDIN (FORMAT BINARY)").format(stage)
        async with cur.copy(copy_sql) as copy:
            copy.set_types(_STAGE_TYPES)
            for row in rows:
                await copy.write_row(row)
        inserted = await conn.execute(_insert_sql(table))
        return max(inserted.rowcount, 0)

    async def _stages_for(self, conn: AsyncConnection, tables: list[EventTable]) -> None:
        """The staging tables of ``tables`` on this connection (temporary tables live as
        long as it does), made in their own transaction so no rollback takes them."""
        staged = self._stages.setdefault(conn, set())
        missing = [t.name for t in tables if t.name not in staged]
        if not missing:
            return
        async with conn.transaction():
            for name in missing:
                await conn.execute(
                    sql.SQL(
                        "CREATE TEMP TABLE IF NOT EXISTS {} (time timestamptz, device_id text,"
                        " source text, id text, received_at timestamptz, schema_version text,"
                        " data jsonb) ON COMMIT DELETE ROWS"
                    ).format(sql.Identifier(f"loom_stage_{name}"))
                )
        staged.update(missing)

    async def _partitions_for(self, conn: AsyncConnection, rows: list[_Pending]) -> str | None:
        """Make the partitions ``rows`` need; returns why not if their table is missing."""
        table = rows[0].table
        if table.type not in self._info:  # first use, or migrated since: look again
            self._info = await load_table_info(conn)
        info = self._info.get(table.type)
        if info is None:
            return f"table {table.name} does not exist: run `loom db migrate`"
        if info.backend != "partitioned":
            return None
        known = self._known_partitions.setdefault(table.type, set())
        times = [p.row[0] for p in rows]
        first, last = (
            partition_start(min(times), info.interval),
            partition_start(max(times), info.interval),
        )
        if first == last and first in known:
            return None  # the usual case: the whole batch in one partition we know
        starts = {partition_start(t, info.interval) for t in times} - known
        if starts:
            try:
                created = await ensure_partitions(conn, info, starts)
            except errors.UndefinedTable:  # dropped since we looked
                self._info = {}
                return f"table {table.name} does not exist: run `loom db migrate`"
            if created:
                log.info("store.partitions_created", table=table.name, partitions=created)
            known |= starts
        return None


def _fail(batch: list[_Pending], failure: Exception) -> None:
    for pending in batch:
        if not pending.done.done():
            pending.done.set_exception(failure)


_INSERTS: dict[str, sql.Composed] = {}


def _insert_sql(table: EventTable) -> sql.Composed:
    query = _INSERTS.get(table.name)
    if query is None:
        typed = [sql.Identifier(c.name) for c in table.columns]
        query = sql.SQL(
            "INSERT INTO {table} ({staged}{typed}) SELECT {staged}{exprs} FROM {stage}"
            " ON CONFLICT DO NOTHING"
        ).format(
            table=sql.Identifier(table.name),
            staged=sql.SQL(", ").join(map(sql.Identifier, _STAGED)),
            typed=sql.SQL("").join(sql.SQL(", ") + t for t in typed),
            exprs=sql.SQL("").join(sql.SQL(", " + c.expression) for c in table.columns),
            stage=sql.Identifier(f"loom_stage_{table.name}"),
        )
        _INSERTS[table.name] = query
    return query
