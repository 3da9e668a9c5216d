"""The device registry in PostgreSQL: register, update, soft delete, last-seen activity."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row, tuple_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from pydantic import BaseModel, ConfigDict, Field

from functions.ingest.auth import hash_token, new_token
from functions.ingest.problems import BadRequest, Conflict, NotFound, ServiceUnavailable
from loom.logging import get_logger

__all__ = ["ActivityTracker", "Device", "DeviceIn", "DevicePatch", "DeviceRegistry"]

log = get_logger(__name__)
_ID = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"


class DeviceIn(BaseModel):
    """What a device is registered with; ``device_id`` is generated when left out."""

    model_config = ConfigDict(extra="forbid")

    device_id: str | None = Field(default=None, pattern=_ID, examples=["pixel-7-ab12"])
    name: str = Field(min_length=1, max_length=200, examples=["Mads' phone"])
    device_type: str = Field(default="other", min_length=1, max_length=50, examples=["phone"])
    platform: str | None = Field(default=None, max_length=50, examples=["android"])
    metadata: dict[str, Any] = Field(default_factory=dict)


class DevicePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    device_type: str | None = Field(default=None, min_length=1, max_length=50)
    platform: str | None = Field(default=None, max_length=50)
    metadata: dict[str, Any] | None = None


class Device(BaseModel):
    device_id: str
    name: str
    device_type: str
    platform: str | None
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None
    last_seen_at: datetime | None
    events_total: int
    allowed_commands: list[str] = Field(
        description="Dangerous command types enabled for this device "
        "(PUT /devices/{device_id}/commands/allowed)."
    )


class RegisteredDevice(Device):
    token: str = Field(description="The device's token. Shown only in this answer: keep it.")


_COLUMNS = (
    "device_id, name, device_type, platform, metadata, created_at, updated_at, deleted_at,"
    " last_seen_at, events_total, allowed_commands"
)


class DeviceRegistry:
    def __init__(self, pool: AsyncConnectionPool, retry_after: int) -> None:
        self._pool = pool
        self._retry_after = retry_after

    @contextlib.asynccontextmanager
    async def _conn(self) -> Any:
        try:
            async with self._pool.connection() as conn:
                conn.row_factory = dict_row
                try:
                    yield conn
                finally:  # pooled connections go back as they came
                    conn.row_factory = tuple_row
        except psycopg.DataError as exc:  # e.g. a NUL character, which PostgreSQL cannot store
            raise BadRequest(f"the database cannot store this value: {exc}") from exc
        except (PoolTimeout, psycopg.OperationalError, psycopg.InternalError) as exc:
            log.warning("devices.database_unavailable", error=str(exc))
            raise ServiceUnavailable("database unavailable", retry_after=self._retry_after) from exc

    async def register(self, new: DeviceIn) -> RegisteredDevice:
        device_id = new.device_id or f"dev-{new_token()[-12:].lower()}"
        token = new_token()
        async with self._conn() as conn, conn.transaction():
            cur = await conn.execute(
                # A soft-deleted id may be registered again: the record comes back to life
                # with the new details (and a new token); a live one is a conflict.
                "INSERT INTO devices (device_id, name, device_type, platform, metadata)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (device_id) DO UPDATE SET"
                " name = EXCLUDED.name, device_type = EXCLUDED.device_type,"
                " platform = EXCLUDED.platform, metadata = EXCLUDED.metadata,"
                " deleted_at = NULL, updated_at = now() WHERE devices.deleted_at IS NOT NULL"
                f" RETURNING {_COLUMNS}",
                (device_id, new.name, new.device_type, new.platform, Jsonb(new.metadata)),
            )
            row = await cur.fetchone()
            if row is None:
                raise Conflict(f"device {device_id!r} is already registered")
            await conn.execute(
                "INSERT INTO access_tokens (token_hash, kind, device_id) VALUES (%s, 'device', %s)",
                (hash_token(token), device_id),
            )
        return RegisteredDevice(**row, token=token)

    async def list(self, include_deleted: bool = False) -> list[Device]:
        where = "" if include_deleted else " WHERE deleted_at IS NULL"
        async with self._conn() as conn:
            cur = await conn.execute(f"SELECT {_COLUMNS} FROM devices{where} ORDER BY device_id")
            return [Device(**row) for row in await cur.fetchall()]

    async def get(self, device_id: str) -> Device:
        async with self._conn() as conn:
            cur = await conn.execute(
                f"SELECT {_COLUMNS} FROM devices WHERE device_id = %s", (device_id,)
            )
            row = await cur.fetchone()
        if row is None:
            raise NotFound(f"no device {device_id!r}")
        return Device(**row)

    async def patch(self, device_id: str, patch: DevicePatch) -> Device:
        # null clears `platform`; for the other fields (NOT NULL) it means "leave as is"
        changes = {
            k: v for k, v in patch.model_dump(exclude_unset=True).items()
            if v is not None or k == "platform"
        }  # fmt: skip
        if "metadata" in changes:
            changes["metadata"] = Jsonb(changes["metadata"])
        sets = ", ".join(f"{column} = %({column})s" for column in changes)
        sets = f"{sets}, updated_at = now()" if sets else "updated_at = now()"
        async with self._conn() as conn:
            cur = await conn.execute(
                f"UPDATE devices SET {sets} WHERE device_id = %(device_id)s AND deleted_at IS NULL"
                f" RETURNING {_COLUMNS}",
                {**changes, "device_id": device_id},
            )
            row = await cur.fetchone()
        if row is None:
            raise NotFound(f"no device {device_id!r} (or it was deleted)")
        return Device(**row)

    async def soft_delete(self, device_id: str) -> Device:
        """Mark the device deleted and revoke its tokens; its data is kept."""
        async with self._conn() as conn, conn.transaction():
            cur = await conn.execute(
                "UPDATE devices SET deleted_at = now(), updated_at = now()"
                f" WHERE device_id = %s AND deleted_at IS NULL RETURNING {_COLUMNS}",
                (device_id,),
            )
            row = await cur.fetchone()
            if row is None:
                raise NotFound(f"no device {device_id!r} (or it was deleted already)")
            await conn.execute(
                "UPDATE access_tokens SET revoked_at = now()"
                " WHERE device_id = %s AND revoked_at IS NULL",
                (device_id,),
            )
        return Device(**row)

    async def activity(self) -> list[dict[str, Any]]:
        """Last-seen time and event count of every device, most recent first."""
        async with self._conn() as conn:
            cur = await conn.execute(
                "SELECT device_id, name, last_seen_at, events_total,"
                " coalesce(last_seen_at > now() - interval '5 minutes', false) AS active"
                " FROM devices WHERE deleted_at IS NULL ORDER BY last_seen_at DESC NULLS LAST,"
                " device_id"
            )
            return list(await cur.fetchall())

    async def rotate_token(self, device_id: str) -> RegisteredDevice:
        """Revoke the device's tokens and issue a new one (shown once)."""
        device = await self.get(device_id)
        if device.deleted_at is not None:
            raise NotFound(f"device {device_id!r} was deleted")
        token = new_token()
        async with self._conn() as conn, conn.transaction():
            await conn.execute(
                "UPDATE access_tokens SET revoked_at = now()"
                " WHERE device_id = %s AND revoked_at IS NULL",
                (device_id,),
            )
            await conn.execute(
                "INSERT INTO access_tokens (token_hash, kind, device_id) VALUES (%s, 'device', %s)",
                (hash_token(token), device_id),
            )
        return RegisteredDevice(**device.model_dump(), token=token)


class ActivityTracker:
    """Counts events per device in memory and writes last-seen times every few seconds."""

    def __init__(self, pool: AsyncConnectionPool, interval: float = 2.0) -> None:
        self._pool = pool
        self._interval = interval
        self._pending: dict[str, tuple[datetime, int]] = {}
        self._task: asyncio.Task[None] | None = None

    def seen(self, device_id: str, count: int = 1) -> None:
        _, before = self._pending.get(device_id, (None, 0))
        self._pending[device_id] = (datetime.now(UTC), before + count)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="device-activity")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.flush()

    async def flush(self) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        ids = list(pending)
        try:
            async with self._pool.connection(timeout=5) as conn:
                await conn.execute(
                    "UPDATE devices d SET last_seen_at = GREATEST(d.last_seen_at, v.seen),"
                    " events_total = d.events_total + v.n"
                    " FROM unnest(%s::text[], %s::timestamptz[], %s::bigint[]) AS v(id, seen, n)"
                    " WHERE d.device_id = v.id",
                    (ids, [pending[i][0] for i in ids], [pending[i][1] for i in ids]),
                )
        except psycopg.DataError as exc:  # a value PostgreSQL cannot take: retrying cannot help
            log.warning("devices.activity_dropped", error=str(exc), devices=len(ids))
        except (PoolTimeout, psycopg.Error) as exc:
            log.warning("devices.activity_not_saved", error=str(exc), devices=len(ids))
            for device_id, (seen, n) in pending.items():  # keep the counts for the next try
                later, more = self._pending.get(device_id, (seen, 0))
                self._pending[device_id] = (max(seen, later), n + more)

                "SELECT device_id, name, last_seen_at, events_total,"
                " (last_seen_at > now() - interval '5 minutes') AS active"
