"""The ``device_commands`` table: each device's queue of commands, and their audit log.

A row is one item a device is to receive: a command the admin issued, or another
device's sync broadcast. It is ``queued`` until first sent, ``delivered`` once sent,
``acked`` once the device confirmed receipt, ``succeeded`` or ``failed`` once the device
answered, or ``expired`` when it was still waiting after its type's catalog retention.
Devices receive their items in ``sequence`` order. Every statement here runs on a
connection the caller opened (and in its transaction); what to do when the database is
down is the caller's business.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from pydantic import BaseModel, Field

from loom.catalog import EventType
from loom.events import PARTITION_KEY, RECORDED_TIME, CloudEvent, make_event

__all__ = [
    "COMMAND_PREFIX",
    "COMMAND_SOURCE",
    "NOTIFY_CHANNEL",
    "WAITING",
    "Command",
    "NewCommand",
    "Status",
    "ack",
    "command_types",
    "enqueue",
    "existing",
    "get",
    "mark_delivered",
    "new_command_id",
    "page",
    "record_response",
    "waiting",
]

Status = Literal["queued", "delivered", "acked", "succeeded", "failed", "expired"]
WAITING = ("queued", "delivered")  # the device has not confirmed these yet
COMMAND_PREFIX = "device.command."
COMMAND_SOURCE = "/loom/commands"  # the CloudEvent source of commands the admin issued
NOTIFY_CHANNEL = "loom_device_commands"  # the migration's trigger NOTIFYs it with the device id

_COLUMNS = (
    "command_id, device_id, sequence, type, source, data, issued_by, issued_at, expires_at,"
    " delivered_at, delivery_attempts, acked_at, status, result, responded_at"
)


def command_types(types: Iterable[EventType]) -> list[EventType]:
    """The catalog's command types (what the admin may issue)."""
    return [t for t in types if t.type.startswith(COMMAND_PREFIX)]


class Command(BaseModel):
    """One item of a device's queue, with its whole history."""

    command_id: str
    device_id: str
    sequence: int = Field(description="Position in the device's queue; delivery order.")
    type: str = Field(examples=["device.command.shell.execute"])
    source: str = Field(description="CloudEvent source: /loom/commands, or the broadcaster.")
    data: dict[str, Any]
    issued_by: str = Field(description="The admin token's label, or the broadcasting device.")
    issued_at: datetime
    expires_at: datetime = Field(description="Not delivered after this (type's retention).")
    delivered_at: datetime | None = Field(description="When it was first sent to the device.")
    delivery_attempts: int
    acked_at: datetime | None
    status: Status
    result: dict[str, Any] | None = Field(description="The device's last answer (its data).")
    responded_at: datetime | None

    def cloudevent(self) -> dict[str, Any]:
        """The command as a structured-mode CloudEvent (JSON), as the device receives it."""
        return {
            "specversion": "1.0",
            "id": self.command_id,
            "source": self.source,
            "type": self.type,
            "time": _rfc3339(self.issued_at),
            "datacontenttype": "application/json",
            PARTITION_KEY: self.device_id,
            "data": self.data,
        }

    def frame(self) -> dict[str, Any]:
        """What the WebSocket sends and the long-poll answers for this command."""
        return {"type": "command", "command_id": self.command_id, "sequence": self.sequence,
                "event": self.cloudevent()}  # fmt: skip


@dataclass(frozen=True)
class NewCommand:
    """A row to enqueue; ``expires_at`` follows from the type's retention."""

    command_id: str
    device_id: str
    event_type: EventType
    data: dict[str, Any]
    issued_by: str
    source: str = COMMAND_SOURCE
    issued_at: datetime | None = None

    def at(self) -> datetime:
        return self.issued_at or datetime.now(UTC)

    def record(self, issued_at: datetime) -> CloudEvent:
        """The command's CloudEvent, for its type's Kafka topic (the record)."""
        return make_event(
            self.event_type.type, self.data, source=self.source, device_id=self.device_id,
            id_=self.command_id, time=issued_at, dataschema=self.event_type.schema_id,
            **{RECORDED_TIME: _rfc3339(issued_at)},
        )  # fmt: skip


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def new_command_id() -> str:
    return str(uuid.uuid4())


async def enqueue(conn: AsyncConnection[Any], new: NewCommand) -> Command | None:
    """Append ``new`` to its device's queue; None if its ``command_id`` is there already.

    Takes the device's next sequence number, which locks the device's counter until the
    caller's transaction ends: call it in a transaction, and commit soon.
    """
    issued_at = new.at()
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "WITH seq AS ("
        " INSERT INTO device_command_sequences AS s (device_id, last_sequence) VALUES (%(d)s, 1)"
        " ON CONFLICT (device_id) DO UPDATE SET last_sequence = s.last_sequence + 1"
        " RETURNING last_sequence)"
        " INSERT INTO device_commands (command_id, device_id, sequence, type, source, data,"
        " issued_by, issued_at, expires_at)"
        " SELECT %(id)s, %(d)s, seq.last_sequence, %(type)s, %(source)s, %(data)s, %(by)s,"
        " %(at)s, %(expires)s FROM seq"
        f" ON CONFLICT (command_id) DO NOTHING RETURNING {_COLUMNS}",
        {"id": new.command_id, "d": new.device_id, "type": new.event_type.type,
         "source": new.source, "data": Jsonb(new.data), "by": new.issued_by, "at": issued_at,
         "expires": issued_at + new.event_type.retention},
    )  # fmt: skip
    row = await cur.fetchone()
    return Command(**row) if row else None


async def existing(conn: AsyncConnection[Any], command_ids: list[str]) -> set[str]:
    """Which of ``command_ids`` are queued already."""
    cur = await conn.execute(
        "SELECT command_id FROM device_commands WHERE command_id = ANY(%s)", (command_ids,)
    )
    return {row[0] for row in await cur.fetchall()}


async def _expire(conn: AsyncConnection[Any], device_id: str) -> None:
    """Mark what waited past its type's retention expired: it is never delivered now."""
    await conn.execute(
        "UPDATE device_commands SET status = 'expired' WHERE device_id = %s"
        " AND status IN ('queued', 'delivered') AND expires_at <= now()",
        (device_id,),
    )


async def waiting(conn: AsyncConnection[Any], device_id: str, limit: int) -> list[Command]:
    """The device's next ``limit`` unconfirmed items in order, after expiring stale ones."""
    await _expire(conn, device_id)
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        f"SELECT {_COLUMNS} FROM device_commands WHERE device_id = %s"
        " AND status IN ('queued', 'delivered') ORDER BY sequence LIMIT %s",
        (device_id, limit),
    )
    return [Command(**row) for row in await cur.fetchall()]


async def mark_delivered(conn: AsyncConnection[Any], device_id: str, ids: list[str]) -> None:
    """Count one more delivery of each of ``ids`` (the first one's time is kept)."""
    await conn.execute(
        "UPDATE device_commands SET delivery_attempts = delivery_attempts + 1,"
        " delivered_at = coalesce(delivered_at, now()),"
        " status = CASE WHEN status = 'queued' THEN 'delivered' ELSE status END"
        " WHERE device_id = %s AND command_id = ANY(%s)",
        (device_id, ids),
    )


async def ack(conn: AsyncConnection[Any], device_id: str, command_id: str) -> Command | None:
    """The device confirmed receipt; None if it has no such command. Acking again (or
    after the answer) changes nothing but the first ack's time staying as it was."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "UPDATE device_commands SET acked_at = coalesce(acked_at, now()),"
        " status = CASE WHEN status IN ('queued', 'delivered', 'expired') THEN 'acked'"
        " ELSE status END"
        f" WHERE device_id = %s AND command_id = %s RETURNING {_COLUMNS}",
        (device_id, command_id),
    )
    row = await cur.fetchone()
    return Command(**row) if row else None


async def get(conn: AsyncConnection[Any], device_id: str, command_id: str) -> Command | None:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        f"SELECT {_COLUMNS} FROM device_commands WHERE device_id = %s AND command_id = %s",
        (device_id, command_id),
    )
    row = await cur.fetchone()
    return Command(**row) if row else None


async def page(
    conn: AsyncConnection[Any],
    device_id: str,
    *,
    statuses: list[str] | None = None,
    before: int | None = None,
    limit: int = 50,
) -> list[Command]:
    """The device's items newest first (``sequence`` below ``before``, of ``statuses``)."""
    await _expire(conn, device_id)
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        f"SELECT {_COLUMNS} FROM device_commands WHERE device_id = %(d)s"
        " AND (%(before)s::bigint IS NULL OR sequence < %(before)s)"
        " AND (%(statuses)s::text[] IS NULL OR status = ANY(%(statuses)s))"
        " ORDER BY sequence DESC LIMIT %(limit)s",
        {"d": device_id, "before": before, "statuses": statuses or None, "limit": limit},
    )
    return [Command(**row) for row in await cur.fetchall()]


async def record_response(
    conn: AsyncConnection[Any],
    device_id: str,
    command_id: str,
    *,
    final: Literal["succeeded", "failed"] | None,
    result: dict[str, Any],
    responded_at: datetime,
) -> Literal["recorded", "superseded", "unknown"]:
    """Write a device's answer into its command's row.

    ``final`` is the outcome, or None for progress (received, running, part of the
    output): progress marks the command acked. An answer never replaces a later one
    (by ``responded_at``) unless it is the first outcome, and progress never replaces an
    outcome, so the same answer delivered twice, or answers delivered out of order, leave
    the row as it should be.
    Only the device the command was for can answer it.
    """
    cur = await conn.execute(
        "UPDATE device_commands SET"
        " status = CASE WHEN %(final)s::text IS NOT NULL THEN %(final)s::text"
        " WHEN status IN ('queued', 'delivered', 'expired') THEN 'acked' ELSE status END,"
        " acked_at = coalesce(acked_at, now()), result = %(result)s, responded_at = %(at)s"
        " WHERE device_id = %(d)s AND command_id = %(id)s"
        " AND (responded_at IS NULL OR responded_at <= %(at)s"
        " OR (%(final)s::text IS NOT NULL AND status NOT IN ('succeeded', 'failed')))"
        " AND NOT (%(final)s::text IS NULL AND status IN ('succeeded', 'failed'))"
        " RETURNING status",
        {"final": final, "result": Jsonb(result), "at": responded_at, "d": device_id,
         "id": command_id},
    )  # fmt: skip
    if await cur.fetchone() is not None:
        return "recorded"
    found = await conn.execute(
        "SELECT 1 FROM device_commands WHERE device_id = %s AND command_id = %s",
        (device_id, command_id),
    )
    return "superseded" if await found.fetchone() is not None else "unknown"
