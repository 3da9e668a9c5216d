"""The ``device_commands`` table: each device's queue of commands, and their audit log.

A row is one item a device is to receive: a command the admin issued, or another
device's sync broadcast. It is ``queued`` until first sent, ``delivered`` once sent,
``acked`` once the device confirmed receipt, ``succeeded`` or ``failed`` once the device
answered, or ``expired`` when it was still waiting after its type's catalog retention.
Devices receive their items in ``sequence`` order. An item of a dangerous type that
is disabled for the device while it waits is ``failed`` instead of delivered. Every
statement here runs on a connection the caller opened (and in its transaction); what to
do when the database is down is the caller's business.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
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
    "DISABLED",
    "NOTIFY_CHANNEL",
    "WAITING",
    "Command",
    "NewCommand",
    "Status",
    "ack",
    "command_types",
    "enqueue",
    "existing",
    "fail_disabled",
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
DISABLED = "command_disabled"  # the `code` in the result of an item failed as disabled

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

    @property
    def withdrawn(self) -> bool:
        """Loom settled it before the device acknowledged it (expired, or failed because
        its type was disabled): the device is not to run it."""
        return self.acked_at is None and self.status in ("expired", "failed")

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


async def fail_disabled(
    conn: AsyncConnection[Any], device_id: str, dangerous: Sequence[str]
) -> list[str]:
    """Mark what waits of the ``dangerous`` types not enabled for the device (now) failed,
    with the reason as its result: it is never delivered (again). Returns their ids."""
    if not dangerous:
        return []
    cur = await conn.execute(
        "UPDATE device_commands c SET status = 'failed', result = jsonb_build_object("
        " 'code', %(code)s::text, 'message', c.type || ' was disabled for this device before"
        " the device acknowledged it; it is not delivered')"
        " FROM devices d WHERE d.device_id = c.device_id AND c.device_id = %(d)s"
        " AND c.status IN ('queued', 'delivered') AND c.type = ANY(%(types)s)"
        " AND c.type <> ALL(d.allowed_commands) RETURNING c.sequence, c.command_id",
        {"code": DISABLED, "d": device_id, "types": list(dangerous)},
    )
    return [command_id for _, command_id in sorted(await cur.fetchall())]


async def waiting(
    conn: AsyncConnection[Any],
    device_id: str,
    limit: int,
    *,
    max_bytes: int,
    dangerous: Sequence[str],
) -> list[Command]:
    """The device's next unconfirmed items in order: at most ``limit``, and no more once
    their data passes ``max_bytes`` (one at least, however large). Items past their
    retention are expired first, and those of ``dangerous`` types no longer enabled for
    the device failed (:func:`fail_disabled`)."""
    await _expire(conn, device_id)
    await fail_disabled(conn, device_id, dangerous)
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "WITH next AS (SELECT sequence, row_number() OVER w AS n, sum(size_bytes) OVER w AS total"
        " FROM (SELECT sequence, size_bytes FROM device_commands WHERE device_id = %(d)s"
        " AND status IN ('queued', 'delivered') ORDER BY sequence LIMIT %(limit)s) head"
        " WINDOW w AS (ORDER BY sequence))"
        f" SELECT {_COLUMNS} FROM device_commands WHERE device_id = %(d)s AND sequence IN"
        " (SELECT sequence FROM next WHERE n = 1 OR total <= %(bytes)s) ORDER BY sequence",
        {"d": device_id, "limit": limit, "bytes": max_bytes},
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
    after the answer) changes nothing but the first ack's time staying as it was, and an
    item Loom settled before the ack (:attr:`Command.withdrawn`: expired, or failed as
    disabled) stays as it is."""
    await _expire(conn, device_id)
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "UPDATE device_commands SET acked_at = coalesce(acked_at, now()),"
        " status = CASE WHEN status IN ('queued', 'delivered') THEN 'acked' ELSE status END"
        " WHERE device_id = %s AND command_id = %s"
        " AND NOT (status IN ('expired', 'failed') AND acked_at IS NULL)"
        f" RETURNING {_COLUMNS}",
        (device_id, command_id),
    )
    row = await cur.fetchone()
    return Command(**row) if row else await get(conn, device_id, command_id)


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
    max_bytes: int,
) -> tuple[list[Command], bool]:
    """The device's items newest first (``sequence`` below ``before``, of ``statuses``):
    at most ``limit``, and no more once their data and answers pass ``max_bytes`` (one at
    least); and whether older ones are left."""
    await _expire(conn, device_id)
    cur = await conn.execute(
        "SELECT sequence, row_number() OVER w <= %(limit)s"
        " AND (row_number() OVER w = 1 OR sum(size_bytes) OVER w <= %(bytes)s)"
        " FROM (SELECT sequence, size_bytes FROM device_commands WHERE device_id = %(d)s"
        " AND (%(before)s::bigint IS NULL OR sequence < %(before)s)"
        " AND (%(statuses)s::text[] IS NULL OR status = ANY(%(statuses)s))"
        " ORDER BY sequence DESC LIMIT %(limit)s + 1) head"
        " WINDOW w AS (ORDER BY sequence DESC) ORDER BY sequence DESC",
        {"d": device_id, "before": before, "statuses": statuses or None, "limit": limit,
         "bytes": max_bytes},
    )  # fmt: skip
    heads = await cur.fetchall()
    kept = [sequence for sequence, keep in heads if keep]
    rows = conn.cursor(row_factory=dict_row)
    await rows.execute(
        f"SELECT {_COLUMNS} FROM device_commands WHERE device_id = %s AND sequence = ANY(%s)"
        " ORDER BY sequence DESC",
        (device_id, kept),
    )
    return [Command(**row) for row in await rows.fetchall()], len(kept) < len(heads)


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
    output): progress marks the command acked, but leaves an expired one expired. An
    answer never replaces a later one (by ``responded_at``) unless it is the first
    outcome, and progress never replaces an outcome, so the same answer delivered twice,
    or answers delivered out of order, leave the row as it should be.
    Only the device the command was for can answer it.
    """
    cur = await conn.execute(
        "UPDATE device_commands SET"
        " status = CASE WHEN %(final)s::text IS NOT NULL THEN %(final)s::text"
        " WHEN status IN ('queued', 'delivered') THEN 'acked' ELSE status END,"
        " acked_at = CASE WHEN %(final)s::text IS NULL AND status = 'expired' THEN acked_at"
        " ELSE coalesce(acked_at, now()) END, result = %(result)s, responded_at = %(at)s"
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
