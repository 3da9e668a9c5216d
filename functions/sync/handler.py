"""``sync``: each ``device.sync.*.broadcast`` becomes one item in the queue of every other
live (not deleted) device, neither the sender nor the device the change came from, and
reaches them as commands do (the WebSocket or the long-poll of each device).

An item's id is a UUID5 of the broadcast (source and id) and the receiving device, so a
redelivered broadcast finds its items queued already and adds none.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from functions.commands import queue
from functions.commands.database import Pooled, connection, pooled
from functions.sync.settings import SyncSettings
from loom.catalog import default_catalog
from loom.runtime.context import Context
from loom.runtime.event import Event
from loom.runtime.invoke import PoisonEvent
from loom.runtime.registry import function

__all__ = ["SYNC_TYPES", "Sync", "handle", "item_id", "open_sync", "receivers"]

SYNC_TYPES = [
    t.type for t in default_catalog()
    if t.type.startswith("device.sync.") and t.type.endswith(".broadcast")
]  # fmt: skip
_ITEMS = uuid.UUID("0b6f6a8e-3c1d-5f0a-9e47-2d8c5b1a7f36")


def item_id(event: Event, receiver: str) -> str:
    """The id of ``event``'s item in ``receiver``'s queue: the same on every delivery."""
    return str(uuid.uuid5(_ITEMS, f"{event.source}|{event.id}|{receiver}"))


def receivers(devices: Iterable[str], sender: str, origin: Any = None) -> list[str]:
    """Who gets a broadcast: every device but the sender and the change's origin, in the
    order their queues are locked (sorted, so two broadcasts never wait for each other)."""
    return sorted(set(devices) - {sender, origin})


Sync = Pooled[SyncSettings]  # ctx.state
open_sync = pooled(SyncSettings, lambda config: config.sync_connections)


@function(consumes=SYNC_TYPES, produces=[], lifespan=open_sync)
async def handle(event: Event, ctx: Context) -> None:
    """Queue a device's broadcast for each of the user's other devices."""
    sync: Sync = ctx.state
    data: dict[str, Any] = event.data
    sender = event.device_id or data.get("device_id")
    if not isinstance(sender, str):
        raise PoisonEvent("a broadcast names no device that sent it")
    event_type = default_catalog()[event.type]
    async with connection(sync.pool, "sync") as conn:
        cur = await conn.execute("SELECT device_id FROM devices WHERE deleted_at IS NULL")
        to = receivers([row[0] for row in await cur.fetchall()], sender,
                       data.get("origin_device_id"))  # fmt: skip
        ids = {receiver: item_id(event, receiver) for receiver in to}
        queued = await queue.existing(conn, list(ids.values())) if ids else set()
        for receiver in to:
            if ids[receiver] in queued:
                continue
            await queue.enqueue(conn, queue.NewCommand(
                command_id=ids[receiver], device_id=receiver, event_type=event_type,
                data=data, issued_by=sender, source=event.source,
            ))  # fmt: skip
    ctx.log.info("sync.queued", receivers=len(to), new=len(to) - len(queued))
