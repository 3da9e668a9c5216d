"""The event store on GPS fixes: group-commit COPY, beside one INSERT per event, beside
the store function behind HTTP, all on the same PostgreSQL in the same run.

- (a) ``store.writer.write`` called straight from this process by 256 (then 2048)
  concurrent callers (a fixed pool of coroutines, each writing its next event as soon
  as the last one is committed), so group commits form by themselves; no more rows can
  be waiting than there are callers, so that is also the largest batch possible.
  The goals are judged on 256 callers.
- (b) what a naive store does per request: one prepared ``INSERT … ON CONFLICT DO
  NOTHING`` per event in autocommit (one transaction, one WAL flush per event), on one
  psycopg AsyncConnection, for the first ``NAIVE_EVENTS`` events.
- (c) ``loom serve store`` (uvicorn, uvloop, httptools) as its own process, sent binary
  CloudEvents by ``DELIVERIES`` concurrent keep-alive connections from this process;
  afterwards the table must hold exactly the events sent.

(a) and (b) run ``ROUNDS`` times in turn, after a warm-up (partitions, plans,
connections), and each figure is the median of its rounds, so a burst of load from a
neighbour on this shared 2-core machine skews one round, not the result. Before each
measured run the table is truncated (its partitions stay), so every run writes the
same events into an empty table; each checks the row count afterwards.

Rows/s per core divides the rows by the CPU seconds spent on them, writer and database
together. The writer is this process for (a) and (b) (``time.process_time()``) and
the ``loom serve`` process for (c) (utime + stime from ``/proc/<pid>/stat``; the load
generator is not counted). The database is the whole PostgreSQL server: the
postmaster's own utime + stime, its reaped children's (cutime + cstime: backends that
have exited) and those of every live child (backends, WAL writer, checkpointer …),
read from ``/proc`` before and after the run (resolution: one clock tick, 10 ms, per
process).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from loom.catalog import default_catalog
from loom.db import migrate
from loom.events import to_http_binary
from loom.runtime.event import Event
from loom.services import LocalServices
from loom.services._process import free_port, stop_process, wait_until
from loom.store import open_store
from loom.store.settings import StoreSettings
from loom.store.tables import EventTable, event_tables
from loom.store.writer import WriteStats

TITLE = "Event store: GPS rows/s per core, group-commit COPY vs one INSERT per event vs HTTP"
EVENTS = int(os.environ.get("LOOM_BENCH_STORE_EVENTS", "50000"))
NAIVE_EVENTS = int(os.environ.get("LOOM_BENCH_STORE_NAIVE_EVENTS", "5000"))
HTTP_EVENTS = int(os.environ.get("LOOM_BENCH_STORE_HTTP_EVENTS", "10000"))
WRITERS = (256, 2048)  # concurrent callers of (a); the goals are judged on the first
DELIVERIES = 64
DEVICES = 20
GPS = "device.sensor.gps.raw"
GOAL_PER_CORE = 200_000
GOAL_RATIO = 20
ROUNDS = int(os.environ.get("LOOM_BENCH_STORE_ROUNDS", "3"))
TICK = os.sysconf("SC_CLK_TCK")


# ── CPU accounting ─────────────────────────────────────────────────────────
def _stat(pid: int | str) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _process_cpu(pid: int) -> float:
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / TICK


def _server_cpu(postmaster: int) -> float:
    """CPU seconds of the postmaster, its exited children and its live children."""
    fields = _stat(postmaster)
    ticks = sum(int(f) for f in fields[11:15])
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            child = _stat(entry.name)
        except (FileNotFoundError, ProcessLookupError):
            continue
        if child[1] == str(postmaster):
            ticks += int(child[11]) + int(child[12])
    return ticks / TICK


class _Clock:
    """Wall seconds, this process's CPU seconds and PostgreSQL's, from start to stop."""

    def __init__(self, postmaster: int, server: int | None = None) -> None:
        self.postmaster, self.server = postmaster, server

    def _now(self) -> tuple[float, float, float]:
        mine = _process_cpu(self.server) if self.server else time.process_time()
        return time.perf_counter(), mine, _server_cpu(self.postmaster)

    def __enter__(self) -> _Clock:
        self._start = self._now()
        return self

    def __exit__(self, *_: object) -> None:
        self.wall, self.cpu, self.pg_cpu = (
            b - a for a, b in zip(self._start, self._now(), strict=True)
        )


@dataclass
class _Measured:
    """One scenario over its rounds: the rows each round wrote, its clocks, every latency."""

    rows: int
    clocks: list[_Clock] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    stored: list[int] = field(default_factory=list)
    batches: int = 0
    largest: int = 0
    statuses: dict[int, int] = field(default_factory=dict)

    def add(self, clock: _Clock, stored: int) -> None:
        self.clocks.append(clock)
        self.stored.append(stored)

    @property
    def rate(self) -> float:
        return statistics.median(self.rows / c.wall for c in self.clocks)

    def row(self, label: str, detail: str) -> dict[str, Any]:
        """Medians over the rounds; latency percentiles over all of them."""
        ok = all(n == self.rows for n in self.stored)
        after = "each round" if len(self.stored) > 1 else "the run"
        check = f"table held {self.rows:,} rows after {after}: {'yes' if ok else self.stored}"
        return {
            "scenario": label, "rows": self.rows,
            "seconds": statistics.median(c.wall for c in self.clocks), "rows/s": self.rate,
            "rows/s per core": statistics.median(
                self.rows / max(c.cpu + c.pg_cpu, 1e-9) for c in self.clocks),
            "writer CPU s": statistics.median(c.cpu for c in self.clocks),
            "postgres CPU s": statistics.median(c.pg_cpu for c in self.clocks),
            "p50 ms": _percentile(self.latencies, 50) * 1000,
            "p99 ms": _percentile(self.latencies, 99) * 1000,
            "÷ (b) rows/s": None, "detail": "; ".join(filter(None, [detail, check])),
        }  # fmt: skip


# ── the data ───────────────────────────────────────────────────────────────
def _events(count: int) -> list[Event]:
    """GPS fixes as ingest makes them: several devices, times within the last day."""
    rng = random.Random(7)
    now = datetime.now(UTC)
    events = []
    for _ in range(count):
        device = f"bench-phone-{rng.randrange(DEVICES):02d}"
        at = now - timedelta(seconds=rng.uniform(1, 86_000))
        message_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        data = {
            "schema_version": "1.0", "device_id": device, "timestamp": at.isoformat(),
            "message_id": message_id, "latitude": round(rng.gauss(52.52, 0.05), 7),
            "longitude": round(rng.gauss(13.405, 0.05), 7),
            "altitude": round(rng.uniform(30, 60), 1), "accuracy": round(rng.uniform(3, 25), 1),
            "heading": round(rng.uniform(0, 360), 1), "speed": round(rng.uniform(0, 15), 2),
        }  # fmt: skip
        events.append(Event(type=GPS, data=data, id=message_id, source=f"/devices/{device}",
                            time=at, device_id=device))  # fmt: skip
    return events


def _percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if values else 0.0


async def _pool(
    items: list[Any], workers: int, work: Callable[[Any], Awaitable[None]]
) -> list[float]:
    """``work`` on every item with ``workers`` at a time; each call's seconds."""
    feed: Iterator[Any] = iter(items)
    latencies: list[float] = []

    async def worker() -> None:
        for item in feed:
            started = time.perf_counter()
            await work(item)
            latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(worker() for _ in range(workers)))
    return latencies


def _count(url: str, table: EventTable) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table.name)))
        return int(row.fetchone()[0])  # type: ignore[index]


def _truncate(url: str, table: EventTable) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(table.name)))
        conn.execute(sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier(table.name)))


# ── (a) group commit and (b) one INSERT per event, round after round ──────
def _insert_sql(table: EventTable) -> bytes:
    names = [n for n in table.column_names if n != "stored_at"]
    return (
        sql.SQL("INSERT INTO {} ({}) VALUES ({}) ON CONFLICT DO NOTHING")
        .format(
            sql.Identifier(table.name),
            sql.SQL(", ").join(map(sql.Identifier, names)),
            sql.SQL(", ").join(sql.Placeholder() * len(names)),
        )
        .as_bytes(None)
    )


async def _one_by_one(
    conn: psycopg.AsyncConnection[Any], table: EventTable, query: bytes, event: Event
) -> None:
    """What a naive store does per request: one (prepared) INSERT, committed on its own."""
    data = event.data
    await conn.execute(query, (
        event.time, event.device_id, event.source, event.id, datetime.now(UTC),
        data.get("schema_version", "1.0"), Jsonb(data), *(data.get(c.name) for c in table.columns),
    ), prepare=True)  # fmt: skip


async def _side_by_side(
    settings: StoreSettings, table: EventTable, events: list[Event], postmaster: int
) -> tuple[dict[int, _Measured], _Measured]:
    group = {n: _Measured(len(events)) for n in WRITERS}
    naive = _Measured(min(NAIVE_EVENTS, len(events)))
    url, query = settings.database_url, _insert_sql(table)
    async with (
        open_store(settings, run_migrations=False) as store,
        await psycopg.AsyncConnection.connect(url, autocommit=True) as conn,
    ):
        await _pool(events[:2000], WRITERS[0], store.writer.write)  # warm up: partitions, plans
        for event in events[:100]:
            await _one_by_one(conn, table, query, event)
        for _ in range(ROUNDS):
            for writers, measured in group.items():
                _truncate(url, table)
                store.writer.stats = WriteStats()  # count the measured writes only
                with _Clock(postmaster) as clock:
                    measured.latencies += await _pool(events, writers, store.writer.write)
                measured.add(clock, _count(url, table))
                measured.batches += store.writer.stats.batches
                measured.largest = max(measured.largest, store.writer.stats.largest_batch)
            _truncate(url, table)
            with _Clock(postmaster) as clock:
                for event in events[: naive.rows]:
                    started = time.perf_counter()
                    await _one_by_one(conn, table, query, event)
                    naive.latencies.append(time.perf_counter() - started)
            naive.add(clock, _count(url, table))
    return group, naive


# ── (c) the store function over HTTP ───────────────────────────────────────
def _request(event: Event) -> bytes:
    """One keep-alive HTTP/1.1 POST of ``event`` in binary mode."""
    headers, body = to_http_binary(event.to_cloudevent())
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return (
        f"POST / HTTP/1.1\r\nHost: bench\r\n{head}Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )


async def _deliver(port: int, requests: list[bytes]) -> tuple[list[float], dict[int, int]]:
    """POST every request, ``DELIVERIES`` at a time on as many keep-alive connections.

    Raw asyncio streams rather than httpx: httpx.AsyncClient spends about 4 ms of CPU
    per request at this concurrency, more than the server does, on the same 2 cores.
    """
    statuses: dict[int, int] = {}
    connections = [await asyncio.open_connection("127.0.0.1", port) for _ in range(DELIVERIES)]

    async def post(request: bytes) -> None:
        reader, writer = connections.pop()
        try:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            status = int(head[9:12])
            statuses[status] = statuses.get(status, 0) + 1
        finally:
            connections.append((reader, writer))

    try:
        latencies = await _pool(requests, DELIVERIES, post)
    finally:
        for _, writer in connections:
            writer.close()
    return latencies, statuses


def _over_http(settings: StoreSettings, events: list[Event], postmaster: int) -> _Measured:
    port = free_port()
    env = {**os.environ, "LOOM_DATABASE_URL": settings.database_url, "LOOM_PORT": str(port),
           "LOOM_HOST": "127.0.0.1", "LOOM_LOG_LEVEL": "WARNING",
           "LOOM_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
           "LOOM_STORE_BACKEND": "partitioned",
           "LOOM_STORE_BLOB_URL": settings.store_blob_url}  # fmt: skip
    server = subprocess.Popen([sys.executable, "-m", "loom", "serve", "store"], env=env)
    table = event_tables(default_catalog())[GPS]
    measured = _Measured(len(events))
    try:
        wait_until("loom serve store", lambda: _ready(port), timeout=60, process=server)
        requests = [_request(e) for e in events]
        asyncio.run(_deliver(port, requests[:200]))  # warm up: connections, partitions
        _truncate(settings.database_url, table)
        with _Clock(postmaster, server.pid) as clock:
            measured.latencies, measured.statuses = asyncio.run(_deliver(port, requests))
        measured.add(clock, _count(settings.database_url, table))
    finally:
        stop_process(server, timeout=30)
    return measured


def _ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


# ── the run ────────────────────────────────────────────────────────────────
def run(services: LocalServices) -> list[dict[str, Any]]:
    name = f"bench_store_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(services.postgres.url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = services.postgres.url.rsplit("/", 1)[0] + "/" + name
    migrate(url, backend="partitioned")
    pid_file = services.postgres.data_dir / "pgdata" / "postmaster.pid"
    postmaster = int(pid_file.read_text().split()[0])
    table = event_tables(default_catalog())[GPS]
    events = _events(EVENTS)
    with tempfile.TemporaryDirectory() as blobs:
        settings = StoreSettings(database_url=url, store_backend="partitioned",
                                 kafka_bootstrap_servers=services.kafka.bootstrap_servers,
                                 store_blob_url=f"file://{blobs}")  # fmt: skip
        group, naive = asyncio.run(_side_by_side(settings, table, events, postmaster))
        http = _over_http(settings, events[:HTTP_EVENTS], postmaster)
    a, *more = (
        measured.row(f"(a) group-commit COPY, {writers} concurrent writers",
                     f"{measured.batches / ROUNDS:,.0f} batches a round, "
                     f"largest {measured.largest}")
        for writers, measured in group.items()
    )  # fmt: skip
    b = naive.row("(b) one INSERT per event, autocommit, 1 connection", "")
    c = http.row(
        f"(c) HTTP store function, {DELIVERIES} concurrent deliveries",
        f"statuses {json.dumps(http.statuses)}; CPU of the server, not the client",
    )
    rows = [a, *more, b, c]
    for row in rows:
        row["÷ (b) rows/s"] = row["rows/s"] / naive.rate
    per_core_ratio = a["rows/s per core"] / b["rows/s per core"]
    return [
        *rows,
        _goal(a, f"goal: (a) >= {GOAL_PER_CORE:,} rows/s per core", "rows/s per core",
              GOAL_PER_CORE, f"{os.cpu_count()} cores here"),
        _goal(a, f"goal: (a) >= {GOAL_RATIO} times (b) rows/s", "÷ (b) rows/s", GOAL_RATIO,
              f"per core it is {per_core_ratio:.1f} times"),
    ]  # fmt: skip


def _goal(a: dict[str, Any], label: str, column: str, goal: float, note: str) -> dict[str, Any]:
    """A row saying plainly whether (a)'s ``column`` reaches ``goal``."""
    value = a[column]
    verdict = "MET" if value >= goal else f"NOT MET: {value / goal:.0%} of the goal"
    row: dict[str, Any] = dict.fromkeys(a)
    row.update({"scenario": label, column: value, "detail": f"{verdict} ({note})"})
    return row
