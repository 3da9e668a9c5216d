"""Time partitions and retention, on either storage path (``loom db maintain``).

Native partitioning: one partition per interval (a day; a week for long
retention), named ``<table>_pYYYYMMDD`` after its first day, aligned to Monday
2000-01-03 UTC. Maintenance makes the partitions of the next days and drops every
partition whose *end* is older than the type's retention, so rows live between
their retention and retention plus one interval. The store makes on demand any
partition a late or early event falls in.

TimescaleDB: chunks are TimescaleDB's business; maintenance makes its retention
and compression policies match the catalog (a changed retention replaces the
policy).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from psycopg import AsyncConnection, errors, sql

from loom.store.tables import EventTable

__all__ = [
    "MaintenanceReport",
    "TableInfo",
    "ensure_partitions",
    "load_table_info",
    "maintain",
    "partition_name",
    "partition_start",
]

_EPOCH = datetime(2000, 1, 3, tzinfo=UTC)  # a Monday: weekly partitions start on Mondays
_SUFFIX = re.compile(r"_p(?P<day>\d{8})$")
_LOCK_SPACE = 0x4C4F4F50  # advisory lock namespace for partition changes


@dataclass(frozen=True)
class TableInfo:
    """A row of ``loom_event_tables``: how an event table was made."""

    name: str
    type: str
    backend: str
    interval: timedelta


@dataclass
class MaintenanceReport:
    created: list[str] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)  # partition -> rows it held
    policies: list[str] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)  # tables in use: left for next time
    pruned: dict[str, int] = field(default_factory=dict)  # audit table -> rows deleted


def partition_start(moment: datetime, interval: timedelta) -> datetime:
    steps = (moment - _EPOCH) // interval
    return _EPOCH + steps * interval


def partition_name(table: str, start: datetime) -> str:
    return f"{table}_p{start:%Y%m%d}"


async def load_table_info(conn: AsyncConnection) -> dict[str, TableInfo]:
    """Every event table by event type."""
    cur = await conn.execute(
        "SELECT table_name, event_type, backend, partition_interval FROM loom_event_tables"
    )
    return {row[1]: TableInfo(*row) for row in await cur.fetchall()}


async def ensure_partitions(
    conn: AsyncConnection, info: TableInfo, starts: Iterable[datetime]
) -> list[str]:
    """Create the partitions starting at ``starts`` that do not exist yet (own transaction)."""
    if info.backend != "partitioned":
        return []
    created = []
    async with conn.transaction():
        await _lock(conn, info.name)
        existing = {name for name, _ in await _partitions(conn, info.name)}
        for start in sorted(set(starts)):
            name = partition_name(info.name, start)
            if name in existing:
                continue
            await conn.execute(
                sql.SQL("CREATE TABLE {} PARTITION OF {} FOR VALUES FROM ({}) TO ({})").format(
                    sql.Identifier(name),
                    sql.Identifier(info.name),
                    sql.Literal(start),
                    sql.Literal(start + info.interval),
                )
            )
            created.append(name)
    return created


async def _lock(conn: AsyncConnection, table: str) -> None:
    """Serialise partition changes of ``table`` (several stores, maintenance) until commit."""
    await conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_LOCK_SPACE, table))


async def _partitions(conn: AsyncConnection, table: str) -> list[tuple[str, datetime]]:
    cur = await conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = %s::regclass ORDER BY 1",
        (table,),
    )
    found = []
    for (name,) in await cur.fetchall():
        match = _SUFFIX.search(name)
        if match:
            found.append((name, datetime.strptime(match["day"], "%Y%m%d").replace(tzinfo=UTC)))
    return found


async def _drop_expired(
    conn: AsyncConnection, info: TableInfo, retention: timedelta, now: datetime
) -> dict[str, int]:
    dropped = {}
    horizon = now - retention
    for name, start in await _partitions(conn, info.name):
        if start + info.interval > horizon:
            continue
        async with conn.transaction():
            await _lock(conn, info.name)
            cur = await conn.execute(
                sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(name))
            )
            rows = (await cur.fetchone() or (0,))[0]
            await conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))
        dropped[name] = int(rows)
    return dropped


async def _sync_timescale_policies(
    conn: AsyncConnection, info: TableInfo, retention: timedelta
) -> list[str]:
    """Retention and compression policies of one hypertable, as the catalog says."""
    done = []
    cur = await conn.execute(
        "SELECT proc_name, config FROM timescaledb_information.jobs WHERE hypertable_name = %s",
        (info.name,),
    )
    jobs = {row[0]: row[1] for row in await cur.fetchall()}
    table = sql.Literal(info.name)
    known = jobs.get("policy_retention")
    if known is not None and known.get("drop_after") != _pg_interval(retention):
        await conn.execute(sql.SQL("SELECT remove_retention_policy({})").format(table))
        known = None
    if known is None:
        await conn.execute(
            sql.SQL("SELECT add_retention_policy({}, drop_after => {}::interval)").format(
                table, sql.Literal(_pg_interval(retention))
            )
        )
        done.append(f"{info.name}: retention {_pg_interval(retention)}")
    compress_after = info.interval * 2
    if "policy_compression" not in jobs and compress_after < retention:
        await conn.execute("SELECT loom_enable_compression(%s::regclass)", (info.name,))
        await conn.execute(
            sql.SQL("SELECT add_compression_policy({}, compress_after => {}::interval)").format(
                table, sql.Literal(_pg_interval(compress_after))
            )
        )
        done.append(f"{info.name}: compression after {_pg_interval(compress_after)}")
    return done


def _pg_interval(value: timedelta) -> str:
    """How PostgreSQL prints an interval of whole days or hours (e.g. ``30 days``)."""
    seconds = int(value.total_seconds())
    if seconds % 86400 == 0:
        days = seconds // 86400
        return f"{days} day{'s' if days != 1 else ''}"
    return f"{seconds // 3600:02d}:00:00"


async def maintain(
    conn: AsyncConnection,
    tables: Mapping[str, EventTable],
    *,
    now: datetime | None = None,
    ahead_days: int = 3,
) -> MaintenanceReport:
    """Partitions ahead, expired partitions dropped (native); policies in line (TimescaleDB)."""
    now = now or datetime.now(UTC)
    report = MaintenanceReport()
    # Dropping or adding a partition locks its table; a long read holding it would queue
    # every insert behind the waiting DDL. Give up quickly instead and try next round.
    await conn.execute("SET lock_timeout = '2s'")
    for event_type, info in sorted((await load_table_info(conn)).items()):
        table = tables.get(event_type)
        if table is None:
            continue  # no longer stored: its table is kept as it is, untouched
        if info.backend == "timescaledb":
            report.policies += await _sync_timescale_policies(conn, info, table.retention)
            continue
        first = partition_start(now, info.interval)
        last = now + timedelta(days=ahead_days)
        starts = []
        while first <= last:
            starts.append(first)
            first += info.interval
        try:
            report.created += await ensure_partitions(conn, info, starts)
            report.dropped.update(await _drop_expired(conn, info, table.retention, now))
        except errors.UndefinedTable:
            continue
        except errors.LockNotAvailable:
            report.busy.append(info.name)
    await _prune_command_audit(conn, tables, now, report)
    return report


async def _prune_command_audit(
    conn: AsyncConnection,
    tables: Mapping[str, EventTable],
    now: datetime,
    report: MaintenanceReport,
) -> None:
    """The remote-control audit (``device_commands``) is kept as long as the device
    responses that settle it: a command older than that is deleted, whatever its state."""
    kept = [t.retention for name, t in tables.items() if name.startswith("device.response.")]
    if not kept:
        return
    try:
        cur = await conn.execute(
            "DELETE FROM device_commands WHERE issued_at < %s", (now - max(kept),)
        )
    except errors.UndefinedTable:
        return
    if cur.rowcount:
        report.pruned["device_commands"] = cur.rowcount
