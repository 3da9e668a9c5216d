"""Where fetchers stopped: one row per (fetcher, account) in ``loom_fetcher_cursor``.

:class:`PostgresCursorStore` keeps it across runs (a CronJob's pod is new each time);
:class:`MemoryCursorStore` is the same in a dict for tests. ``claim`` makes one run
per account at a time: a PostgreSQL advisory lock held for the run, so an overlapping
run (a slow CronJob, ``loom fetch`` by hand while ``loom dev`` runs) skips the account
instead of fetching it twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

import psycopg
from psycopg.types.json import Jsonb

__all__ = ["CursorRow", "CursorStore", "MemoryCursorStore", "PostgresCursorStore"]


@dataclass(frozen=True)
class CursorRow:
    """What is known of one account of one fetcher."""

    fetcher: str
    account: str
    cursor: dict[str, Any]
    emitted_total: int = 0
    failures: int = 0
    last_error: str | None = None
    last_success_at: datetime | None = None
    next_attempt_at: datetime | None = None


class CursorStore(Protocol):
    def claim(self, fetcher: str, account: str) -> Any: ...  # AsyncContextManager[bool]

    async def get(self, fetcher: str, account: str) -> CursorRow: ...

    async def advance(
        self, fetcher: str, account: str, cursor: dict[str, Any], emitted: int
    ) -> None: ...

    async def succeeded(self, fetcher: str, account: str, at: datetime) -> None: ...

    async def failed(self, fetcher: str, account: str, error: str, retry_at: datetime) -> None: ...

    async def rows(self, fetcher: str | None = None) -> list[CursorRow]: ...


class MemoryCursorStore:
    """Cursors in a dict: for tests and for runs that should remember nothing."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], CursorRow] = {}
        self._busy: set[tuple[str, str]] = set()

    @asynccontextmanager
    async def claim(self, fetcher: str, account: str) -> AsyncIterator[bool]:
        key = (fetcher, account)
        if key in self._busy:
            yield False
            return
        self._busy.add(key)
        try:
            yield True
        finally:
            self._busy.discard(key)

    async def get(self, fetcher: str, account: str) -> CursorRow:
        return self._rows.get((fetcher, account)) or CursorRow(fetcher, account, {})

    async def _put(self, row: CursorRow) -> None:
        self._rows[(row.fetcher, row.account)] = row

    async def advance(
        self, fetcher: str, account: str, cursor: dict[str, Any], emitted: int
    ) -> None:
        row = await self.get(fetcher, account)
        total = row.emitted_total + emitted
        await self._put(replace(row, cursor=dict(cursor), emitted_total=total))

    async def succeeded(self, fetcher: str, account: str, at: datetime) -> None:
        row = await self.get(fetcher, account)
        await self._put(replace(row, failures=0, last_error=None, last_success_at=at,
                                next_attempt_at=None))  # fmt: skip

    async def failed(self, fetcher: str, account: str, error: str, retry_at: datetime) -> None:
        row = await self.get(fetcher, account)
        await self._put(replace(row, failures=row.failures + 1, last_error=error,
                                next_attempt_at=retry_at))  # fmt: skip

    async def rows(self, fetcher: str | None = None) -> list[CursorRow]:
        return sorted((r for r in self._rows.values() if fetcher in (None, r.fetcher)),
                      key=lambda r: (r.fetcher, r.account))  # fmt: skip


_COLUMNS = (
    "fetcher, account, cursor, emitted_total, failures, last_error, last_success_at,"
    " next_attempt_at"
)


class PostgresCursorStore:
    """Cursors in ``loom_fetcher_cursor`` (migration 0007); one connection per store."""

    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self._conn = conn
        self._lock = asyncio.Lock()  # one connection: one statement at a time

    @classmethod
    @asynccontextmanager
    async def connect(cls, database_url: str) -> AsyncIterator[PostgresCursorStore]:
        conn = await psycopg.AsyncConnection.connect(
            database_url, autocommit=True, connect_timeout=10
        )
        try:
            yield cls(conn)
        finally:
            await conn.close()

    async def _execute(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        async with self._lock:
            cur = await self._conn.execute(sql, params)
            return await cur.fetchall() if cur.description else []

    @asynccontextmanager
    async def claim(self, fetcher: str, account: str) -> AsyncIterator[bool]:
        key = f"loom-fetcher|{fetcher}|{account}"
        (row,) = await self._execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (key,))
        if not row[0]:
            yield False
            return
        try:
            yield True
        finally:
            await self._execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (key,))

    async def get(self, fetcher: str, account: str) -> CursorRow:
        found = await self._execute(
            f"SELECT {_COLUMNS} FROM loom_fetcher_cursor WHERE fetcher = %s AND account = %s",
            (fetcher, account),
        )
        return CursorRow(*found[0]) if found else CursorRow(fetcher, account, {})

    async def advance(
        self, fetcher: str, account: str, cursor: dict[str, Any], emitted: int
    ) -> None:
        await self._execute(
            "INSERT INTO loom_fetcher_cursor (fetcher, account, cursor, emitted_total)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT (fetcher, account) DO UPDATE SET"
            " cursor = EXCLUDED.cursor,"
            " emitted_total = loom_fetcher_cursor.emitted_total + EXCLUDED.emitted_total,"
            " updated_at = now()",
            (fetcher, account, Jsonb(cursor), emitted),
        )

    async def succeeded(self, fetcher: str, account: str, at: datetime) -> None:
        await self._execute(
            "INSERT INTO loom_fetcher_cursor (fetcher, account, last_success_at)"
            " VALUES (%s, %s, %s) ON CONFLICT (fetcher, account) DO UPDATE SET"
            " failures = 0, last_error = NULL, next_attempt_at = NULL,"
            " last_success_at = EXCLUDED.last_success_at, updated_at = now()",
            (fetcher, account, at),
        )

    async def failed(self, fetcher: str, account: str, error: str, retry_at: datetime) -> None:
        await self._execute(
            "INSERT INTO loom_fetcher_cursor (fetcher, account, failures, last_error,"
            " next_attempt_at) VALUES (%s, %s, 1, %s, %s)"
            " ON CONFLICT (fetcher, account) DO UPDATE SET"
            " failures = loom_fetcher_cursor.failures + 1, last_error = EXCLUDED.last_error,"
            " next_attempt_at = EXCLUDED.next_attempt_at, updated_at = now()",
            (fetcher, account, error, retry_at),
        )

    async def rows(self, fetcher: str | None = None) -> list[CursorRow]:
        found = await self._execute(
            f"SELECT {_COLUMNS} FROM loom_fetcher_cursor"
            " WHERE %s::text IS NULL OR fetcher = %s ORDER BY fetcher, account",
            (fetcher, fetcher),
        )
        return [CursorRow(*row) for row in found]
