"""Per-device state that outlives the process: what ordered functions remember between
events (a VAD stream, a motion window, an open app session).

Functions scale to zero and are redelivered events, so state lives in PostgreSQL
(``loom_function_state``), not only in memory. A handler changes it in one step:

    async with ctx.state.transition(device_id, event.id) as state:
        state.value = next_state(state.value, event)

Redelivery safety: the row keeps the state *before* the last event beside the state
after it. When the last event comes again (the host crashed after saving the state but
before its outputs were acknowledged), ``state.value`` is the state before it, so the
handler makes the same outputs again (derived ids are deterministic) instead of skipping
them or applying the event twice. Older repeats are the function's business (usually:
an event older than what the state has seen is late).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import orjson
import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from loom.db.pool import open_pool
from loom.runtime.invoke import Unavailable
from loom.settings import LoomSettings, settings_for

if TYPE_CHECKING:
    from loom.runtime.context import Context
    from loom.runtime.registry import Lifespan

S = TypeVar("S", bound=LoomSettings)

__all__ = [
    "MemoryStateStore",
    "PostgresStateStore",
    "StateStore",
    "Stateful",
    "Transition",
    "open_state_store",
    "stateful",
    "stateful_parts",
]


@dataclass
class Transition:
    """One event's change of one key's state: read ``value``, assign the new one."""

    key: str
    event_id: str
    value: dict[str, Any]
    repeated: bool  # the last event again: ``value`` is the state from before it


class StateStore(Protocol):
    def transition(self, key: str, event_id: str) -> Any: ...  # AsyncContextManager

    async def get(self, key: str) -> dict[str, Any]: ...

    async def peek(self, key: str, event_id: str) -> dict[str, Any]: ...


@dataclass
class MemoryStateStore:
    """In memory, for tests and the harness; same semantics as the PostgreSQL one (a
    handler gets a copy, as from jsonb, so changing it in place changes nothing)."""

    rows: dict[str, tuple[dict[str, Any], dict[str, Any], str]] = field(default_factory=dict)
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    @asynccontextmanager
    async def transition(self, key: str, event_id: str) -> AsyncIterator[Transition]:
        async with self._locks.setdefault(key, asyncio.Lock()):  # one change at a time
            state, before, last = self.rows.get(key, ({}, {}, ""))
            repeated = last == event_id
            step = Transition(key, event_id, _copy(before if repeated else state), repeated)
            yield step
            # The rows are never handed out (only copies), so they are kept as they are.
            self.rows[key] = (_copy(step.value), before if repeated else state, event_id)

    async def get(self, key: str) -> dict[str, Any]:
        return _copy(self.rows.get(key, ({}, {}, ""))[0])

    async def peek(self, key: str, event_id: str) -> dict[str, Any]:
        state, before, last = self.rows.get(key, ({}, {}, ""))
        return _copy(before if last == event_id else state)


def _copy(value: dict[str, Any]) -> dict[str, Any]:
    """A copy as a jsonb round trip makes it (and as cheaply as one can be had)."""
    copied: dict[str, Any] = orjson.loads(orjson.dumps(value))
    return copied


@dataclass
class PostgresStateStore:
    """Rows ``(function, key)`` of ``loom_function_state``; one transaction per change,
    the row locked meanwhile (two deliveries of one device never interleave)."""

    pool: AsyncConnectionPool
    function: str

    @asynccontextmanager
    async def transition(self, key: str, event_id: str) -> AsyncIterator[Transition]:
        try:
            async with self._transition(key, event_id) as step:
                yield step
        except (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout) as exc:
            raise Unavailable(f"{self.function}'s state is unavailable: {exc}") from exc

    @asynccontextmanager
    async def _transition(self, key: str, event_id: str) -> AsyncIterator[Transition]:
        async with self.pool.connection() as conn, conn.transaction():
            # The row first exists, so FOR UPDATE below always has a row to lock: two first
            # transitions of one key (two input topics) then wait for each other.
            await conn.execute(
                "INSERT INTO loom_function_state (function, key, state, previous, last_event)"
                " VALUES (%s, %s, '{}', '{}', '') ON CONFLICT (function, key) DO NOTHING",
                (self.function, key),
            )
            cur = await conn.execute(
                "SELECT state, previous, last_event FROM loom_function_state"
                " WHERE function = %s AND key = %s FOR UPDATE",
                (self.function, key),
            )
            row = await cur.fetchone()
            state, before, last = row if row else ({}, {}, "")
            repeated = last == event_id
            step = Transition(key, event_id, dict(before if repeated else state), repeated)
            yield step
            await conn.execute(
                "INSERT INTO loom_function_state (function, key, state, previous, last_event)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (function, key) DO UPDATE SET"
                " state = excluded.state, previous = excluded.previous,"
                " last_event = excluded.last_event, updated_at = now()",
                (self.function, key, Jsonb(step.value),
                 Jsonb(before if repeated else state), event_id),
            )  # fmt: skip

    async def get(self, key: str) -> dict[str, Any]:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT state FROM loom_function_state WHERE function = %s AND key = %s",
                (self.function, key),
            )
            row = await cur.fetchone()
        return dict(row[0]) if row else {}

    async def peek(self, key: str, event_id: str) -> dict[str, Any]:
        """The state ``transition(key, event_id)`` would start from, without locking it:
        for work to do before the transition (a slow call) that must agree with it."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT CASE WHEN last_event = %s THEN previous ELSE state END"
                " FROM loom_function_state WHERE function = %s AND key = %s",
                (event_id, self.function, key),
            )
            row = await cur.fetchone()
        return dict(row[0]) if row else {}


@asynccontextmanager
async def open_state_store(
    settings: LoomSettings, function: str, *, max_connections: int = 4
) -> AsyncIterator[PostgresStateStore]:
    """A pool on LOOM_DATABASE_URL for ``function``'s state (migrated by `loom db migrate`)."""
    async with open_pool(settings.database_url, max_size=max_connections) as pool:
        yield PostgresStateStore(pool, function)


@dataclass(frozen=True)
class Stateful(Generic[S]):
    """What a stateful function's lifespan opens: its state store and its own settings."""

    store: StateStore
    settings: S


def stateful(name: str, settings_cls: type[S]) -> Lifespan:
    """The lifespan of a function that keeps per-device state: reads (and so checks) its
    settings at start, opens its state store in PostgreSQL, yields both as ``ctx.state``."""

    @asynccontextmanager
    async def lifespan(settings: LoomSettings) -> AsyncIterator[Stateful[S]]:
        config = settings_for(settings_cls, settings)
        async with open_state_store(config, name) as store:
            yield Stateful(store, config)

    return lifespan


def stateful_parts(ctx: Context, settings_cls: type[S]) -> tuple[StateStore, S]:
    """``ctx.state`` of a :func:`stateful` function as (store, settings); a bare store (a
    test harness's ``state=``) comes with the settings read from ``ctx.settings``."""
    state = ctx.state
    if isinstance(state, Stateful):
        return state.store, state.settings
    if state is None:
        raise RuntimeError(f"{ctx.function} keeps per-device state, and no store was opened")
    return state, settings_for(settings_cls, ctx.settings)
