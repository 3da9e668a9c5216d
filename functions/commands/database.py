"""The PostgreSQL pool that the ``commands`` and ``sync`` functions open in their lifespan,
and the translation of a database outage into :class:`Unavailable` (retried, never
dead-lettered)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from loom.runtime.invoke import Unavailable
from loom.settings import LoomSettings

__all__ = ["connection", "open_pool"]


@asynccontextmanager
async def open_pool(settings: LoomSettings, max_size: int) -> AsyncIterator[AsyncConnectionPool]:
    """A pool on LOOM_DATABASE_URL (migrated by ingest or `loom db migrate`)."""
    pool = AsyncConnectionPool(
        settings.database_url,
        min_size=1,
        max_size=max_size,
        timeout=10.0,
        open=False,
        check=AsyncConnectionPool.check_connection,
        kwargs={"connect_timeout": 5, "autocommit": True},
    )
    await pool.open(wait=False)
    try:
        yield pool
    finally:
        await pool.close()


@asynccontextmanager
async def connection(pool: AsyncConnectionPool, what: str) -> AsyncIterator[AsyncConnection[Any]]:
    """A connection in a transaction; a database that cannot be reached is Unavailable."""
    try:
        async with pool.connection() as conn, conn.transaction():
            yield conn
    except (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout) as exc:
        raise Unavailable(f"{what}: the database is unavailable: {exc}") from exc
