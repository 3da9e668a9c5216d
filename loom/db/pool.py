"""The PostgreSQL connection pool that Loom's services and functions open on
LOOM_DATABASE_URL (migrated by ingest or ``loom db migrate``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from psycopg_pool import AsyncConnectionPool

__all__ = ["open_pool"]


@asynccontextmanager
async def open_pool(
    database_url: str, *, max_size: int, min_size: int = 1
) -> AsyncIterator[AsyncConnectionPool]:
    """A pool of ``min_size`` to ``max_size`` connections, closed on the way out.

    It opens in the background: a caller waits at most 10 s for a connection, and a
    connection attempt gives up after 5 s. A connection that broke while idle
    (PostgreSQL restarted) is replaced, not used. Connections autocommit, so each
    ``conn.transaction()`` is a real transaction, never a savepoint of an implicit one.
    """
    pool = AsyncConnectionPool(
        database_url,
        min_size=min_size,
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
