"""Remote control as ingest serves it: issuing a command (row and Kafka record together),
reading the audit log, enabling dangerous commands, and each device's queue as its own
connections take it (waiting items, deliveries, acks).

Issuing writes the row in a transaction, produces the command's CloudEvent to its type's
topic (the record, replayable), and commits only once the broker has it: with Kafka down
the answer is 503 and no row is left. The device's queue counter stays locked meanwhile,
so one device's commands are committed in the order of their sequence numbers. That
transaction runs on a small pool of its own: a slow broker holds those connections (for
at most the producer's delivery timeout), never the ones that take events and check
tokens; an issue that cannot get one, or waits too long for the device's counter,
answers 503 at once.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
import psycopg
from psycopg import AsyncConnection
from psycopg.errors import LockNotAvailable
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from pydantic import BaseModel, ConfigDict, Field

from functions.commands import queue
from functions.commands.queue import COMMAND_PREFIX, Command
from functions.ingest.accept import check_data
from functions.ingest.auth import Principal
from functions.ingest.metrics import IngestMetrics
from functions.ingest.problems import (
    BadRequest,
    Forbidden,
    InvalidData,
    NotFound,
    ServiceUnavailable,
    TooLarge,
)
from loom.catalog import Catalog, EventType
from loom.events import to_kafka
from loom.kafka import AsyncProducer, KafkaUnavailable, OutgoingRecord, RecordTooLarge
from loom.logging import get_logger

__all__ = [
    "Acked",
    "Allowed",
    "AllowedIn",
    "CommandBatch",
    "CommandIn",
    "CommandIssued",
    "CommandPage",
    "CommandService",
    "device_only",
]

log = get_logger("loom.ingest")


class CommandIn(BaseModel):
    """A command for a device: a catalog ``device.command.*`` type and its data."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(min_length=1, max_length=256, examples=["device.command.app.launch"])
    data: dict[str, Any] = Field(
        default_factory=dict,
        description="Valid against the type's schema once Loom has set command_id, "
        "message_id and issued_by, and device_id, timestamp and schema_version if absent.",
        examples=[{"app_identifier": "com.apple.Safari"}],
    )


class CommandIssued(BaseModel):
    command_id: str
    device_id: str
    sequence: int
    status: queue.Status
    type: str
    issued_at: datetime


class CommandPage(BaseModel):
    items: list[Command]
    next_cursor: str | None = Field(description="Pass as `cursor` for older ones; null at end.")


class AllowedIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    allowed: list[str] = Field(max_length=64, examples=[["device.command.shell.execute"]])


class Allowed(BaseModel):
    device_id: str
    allowed: list[str] = Field(description="The dangerous command types enabled for it.")
    failed_commands: list[str] = Field(
        default_factory=list,
        description="Commands of the types now disabled that were still waiting: failed "
        "(the reason is their result), never delivered again.",
    )


class CommandFrame(BaseModel):
    type: Literal["command"]
    command_id: str
    sequence: int
    event: dict[str, Any] = Field(description="The command as a structured-mode CloudEvent.")


class CommandBatch(BaseModel):
    commands: list[CommandFrame]


class Acked(BaseModel):
    command_id: str
    status: queue.Status
    acked_at: datetime | None = Field(description="Null when the ack changed nothing.")
    detail: str | None = Field(
        default=None,
        description="Why the ack changed nothing: the command expired, or its type was "
        "disabled, before the device acknowledged it (it is not to be run).",
    )


def device_only(principal: Principal, device_id: str) -> None:
    """Commands are received (and acked) with the device's own token, nobody else's."""
    if principal.is_admin:
        raise Forbidden("a device receives its commands with its own token, not the admin's")
    if principal.device_id != device_id:
        raise Forbidden(f"this token is not device {device_id!r}'s")


class CommandService:
    def __init__(
        self,
        pool: AsyncConnectionPool,
        producer: AsyncProducer,
        catalog: Catalog,
        metrics: IngestMetrics,
        *,
        issue_pool: AsyncConnectionPool,
        topic_prefix: str,
        retry_after: int,
        issue_wait: float,
        max_bytes: int,
    ) -> None:
        self._pool = pool
        self._issue_pool = issue_pool
        self._producer = producer
        self._catalog = catalog
        self._metrics = metrics
        self._prefix = topic_prefix
        self._retry_after = retry_after
        self._lock_timeout = f"{round(issue_wait * 1000)}ms"
        self.max_bytes = max_bytes
        self.dangerous = sorted(t.type for t in queue.command_types(catalog) if t.dangerous)

    @contextlib.asynccontextmanager
    async def _conn(
        self, pool: AsyncConnectionPool | None = None, busy: str = "database unavailable"
    ) -> AsyncIterator[AsyncConnection[Any]]:
        """A connection of ``pool`` in a transaction; 503 saying ``busy`` when none comes in
        the pool's time, or a lock is not had within ``lock_timeout``."""
        try:
            async with (pool or self._pool).connection() as conn, conn.transaction():
                yield conn
        except psycopg.DataError as exc:  # e.g. a NUL character, which PostgreSQL cannot store
            raise BadRequest(f"the database cannot store this value: {exc}") from exc
        except (PoolTimeout, LockNotAvailable) as exc:
            log.warning("commands.busy", error=str(exc), busy=busy)
            raise ServiceUnavailable(busy, retry_after=self._retry_after) from exc
        except (psycopg.OperationalError, psycopg.InternalError) as exc:
            log.warning("commands.database_unavailable", error=str(exc))
            raise ServiceUnavailable("database unavailable", retry_after=self._retry_after) from exc

    # ── the admin's side ───────────────────────────────────────────────────
    async def issue(self, device_id: str, body: CommandIn, principal: Principal) -> Command:
        """Queue ``body`` for the device and write its record to Kafka (see module doc)."""
        event_type = self._catalog[body.type]
        if not event_type.type.startswith(COMMAND_PREFIX):
            raise BadRequest(f"{body.type!r} is not a command type ({COMMAND_PREFIX}*)")
        issued_by = principal.label or "admin"
        command_id = queue.new_command_id()
        data = self._data(event_type, device_id, body.data, command_id, issued_by)
        busy = (f"commands for device {device_id!r} are still waiting for Kafka (or the "
                "database); retry")  # fmt: skip
        async with self._conn(self._issue_pool, busy) as conn:
            # the device's counter may be held by a command that waits for a slow broker
            await conn.execute("SELECT set_config('lock_timeout', %s, true)", (self._lock_timeout,))
            allowed = await self._allowed(conn, device_id)
            if event_type.dangerous and event_type.type not in allowed:
                self._metrics.commands.labels(event_type.type, "forbidden").inc()
                raise Forbidden(
                    f"{event_type.type} is not enabled for device {device_id!r}; enable it "
                    f"with PUT /devices/{device_id}/commands/allowed"
                )
            check_data(self._catalog, event_type, data, len(orjson.dumps(data)))
            new = queue.NewCommand(command_id, device_id, event_type, data, issued_by)
            command = await queue.enqueue(conn, new)
            assert command is not None  # a fresh UUID4 is never queued already
            await self._produce(new, command)
        self._metrics.commands.labels(event_type.type, "queued").inc()
        log.info("commands.issued", command_id=command_id, device_id=device_id,
                 type=event_type.type, sequence=command.sequence, issued_by=issued_by)  # fmt: skip
        return command

    def _data(
        self, event_type: EventType, device_id: str, given: dict[str, Any], command_id: str,
        issued_by: str,
    ) -> dict[str, Any]:  # fmt: skip
        if "command_id" in given:
            raise BadRequest("Loom assigns command_id; leave it out of data")
        if given.get("device_id", device_id) != device_id:
            raise BadRequest(f"data.device_id {given['device_id']!r} is not {device_id!r}")
        data = {**given, "command_id": command_id, "message_id": command_id,
                "issued_by": issued_by}  # fmt: skip
        data.setdefault("device_id", device_id)
        data.setdefault("timestamp", datetime.now(UTC).isoformat())
        data.setdefault("schema_version", event_type.schema_version)
        return data

    async def _produce(self, new: queue.NewCommand, command: Command) -> None:
        """The command's record to its topic; raising here rolls the row back."""
        record = to_kafka(new.record(command.issued_at))
        try:
            await self._producer.send(
                OutgoingRecord.binary(new.event_type.topic(self._prefix), record)
            )
        except KafkaUnavailable as exc:
            self._metrics.commands.labels(new.event_type.type, "unavailable").inc()
            log.warning("commands.not_issued", command_id=new.command_id, error=str(exc),
                        device_id=new.device_id, type=new.event_type.type)  # fmt: skip
            raise ServiceUnavailable(str(exc), retry_after=self._retry_after) from exc
        except RecordTooLarge as exc:
            raise TooLarge(f"Kafka refused the command as too large ({exc})") from exc

    async def _allowed(self, conn: AsyncConnection[Any], device_id: str) -> list[str]:
        cur = await conn.execute(
            "SELECT allowed_commands FROM devices WHERE device_id = %s AND deleted_at IS NULL",
            (device_id,),
        )
        row = await cur.fetchone()
        if row is None:
            raise NotFound(f"no device {device_id!r} (or it was deleted)")
        return list(row[0])

    async def allow(self, device_id: str, types: list[str]) -> Allowed:
        """Enable exactly ``types`` (dangerous command types) for the device; what still
        waits of the others is failed (never delivered)."""
        wrong = sorted(set(types) - set(self.dangerous))
        if wrong:
            raise InvalidData(
                f"not a dangerous command type: {', '.join(wrong)} (those are: "
                f"{', '.join(self.dangerous)}; the others need no enabling)",
                errors=[{"pointer": f"/allowed/{types.index(t)}", "message": "not a dangerous "
                         "command type"} for t in wrong],
            )  # fmt: skip
        async with self._conn() as conn:
            cur = await conn.execute(
                "UPDATE devices SET allowed_commands = %s, updated_at = now()"
                " WHERE device_id = %s AND deleted_at IS NULL RETURNING allowed_commands",
                (sorted(set(types)), device_id),
            )
            row = await cur.fetchone()
            if row is None:
                raise NotFound(f"no device {device_id!r} (or it was deleted)")
            failed = await queue.fail_disabled(conn, device_id, self.dangerous)
        log.info("commands.allowed", device_id=device_id, allowed=row[0], failed=failed)
        return Allowed(device_id=device_id, allowed=list(row[0]), failed_commands=failed)

    async def page(
        self, device_id: str, statuses: list[str] | None, cursor: str | None, limit: int
    ) -> CommandPage:
        before = None
        if cursor is not None:
            if not cursor.isdigit() or not 0 < int(cursor) < 2**63:
                raise BadRequest(f"cursor {cursor!r} is not one this API gave")
            before = int(cursor)
        async with self._conn() as conn:
            found = await conn.execute("SELECT 1 FROM devices WHERE device_id = %s", (device_id,))
            if await found.fetchone() is None:
                raise NotFound(f"no device {device_id!r}")
            items, more = await queue.page(conn, device_id, statuses=statuses, before=before,
                                           limit=limit, max_bytes=self.max_bytes)  # fmt: skip
        return CommandPage(items=items, next_cursor=str(items[-1].sequence) if more else None)

    async def get(self, device_id: str, command_id: str) -> Command:
        async with self._conn() as conn:
            command = await queue.get(conn, device_id, command_id)
        if command is None:
            raise NotFound(f"no command {command_id!r} for device {device_id!r}")
        return command

    # ── the device's side ──────────────────────────────────────────────────
    async def waiting(self, device_id: str, limit: int) -> list[Command]:
        """What the device is to receive next: up to ``limit`` commands, no more once past
        ``max_bytes`` (one at least)."""
        async with self._conn() as conn:
            return await queue.waiting(conn, device_id, limit, max_bytes=self.max_bytes,
                                       dangerous=self.dangerous)  # fmt: skip

    async def delivered(self, device_id: str, commands: list[Command], channel: str) -> None:
        async with self._conn() as conn:
            await queue.mark_delivered(conn, device_id, [c.command_id for c in commands])
        self._metrics.command_deliveries.labels(channel).inc(len(commands))

    async def ack(self, device_id: str, command_id: str, channel: str) -> Acked | None:
        """The device has the command; None if it has no such command. One that expired, or
        was failed as disabled, before this ack stays so, and ``detail`` says why."""
        async with self._conn() as conn:
            command = await queue.ack(conn, device_id, command_id)
        if command is None:
            return None
        detail = None
        if command.withdrawn:
            why = "expired" if command.status == "expired" else "its type was disabled"
            detail = (f"command {command_id!r} was not acked: {why} before the device "
                      "acknowledged it; do not run it")  # fmt: skip
            log.info("commands.ack_too_late", command_id=command_id, device_id=device_id,
                     status=command.status)  # fmt: skip
        else:
            self._metrics.command_acks.labels(channel).inc()
        return Acked(command_id=command.command_id, status=command.status,
                     acked_at=command.acked_at, detail=detail)  # fmt: skip
