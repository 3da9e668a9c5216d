"""What the ``commands`` and ``sync`` functions share: a lifespan that opens their
PostgreSQL pool, and the translation of a database outage into :class:`Unavailable`
(retried, never dead-lettered)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from loom.db.pool import open_pool
from loom.runtime.invoke import Unavailable
from loom.runtime.registry import Lifespan
from loom.settings import LoomSettings, settings_for

__all__ = ["Pooled", "connection", "pooled"]

S = TypeVar("S", bound=LoomSettings)


@dataclass(frozen=True)
class Pooled(Generic[S]):
    """What the handler keeps between events (``ctx.state``): its settings and a pool."""

    settings: S
    pool: AsyncConnectionPool


def pooled(settings_cls: type[S], connections: Callable[[S], int]) -> Lifespan:
    """The lifespan of a function that works in PostgreSQL: reads (and so checks) its
    settings at start, opens a pool of ``connections(settings)`` on LOOM_DATABASE_URL
    (migrated by ingest or `loom db migrate`), yields both as :class:`Pooled`."""

    @asynccontextmanager
    async def lifespan(settings: LoomSettings) -> AsyncIterator[Pooled[S]]:
        config = settings_for(settings_cls, settings)
        async with open_pool(config.database_url, max_size=connections(config)) as pool:
            yield Pooled(config, pool)

    return lifespan


@asynccontextmanager
async def connection(pool: AsyncConnectionPool, what: str) -> AsyncIterator[AsyncConnection[Any]]:
    """A connection in a transaction; a database that cannot be reached is Unavailable."""
    try:
        async with pool.connection() as conn, conn.transaction():
            yield conn
    except (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout) as exc:
        raise Unavailable(f"{what}: the database is unavailable: {exc}") from exc
