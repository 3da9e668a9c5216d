"""``commands``: devices' answers (every ``device.response.*`` type) into the audit row of
the command each names (``data.command_id``): status succeeded or failed (or acked while
the command runs), the answer as the result, and when it was given.

Redelivery is harmless: writing the same answer again leaves the row as it was, and an
older or a progress answer never replaces a later outcome. An answer to a command that
is not queued for the answering device changes nothing (and is logged).
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any

from functions.commands import queue
from functions.commands.database import Pooled, connection, pooled
from functions.commands.outcome import audit_result, outcome
from functions.commands.settings import CommandsSettings
from loom.catalog import default_catalog
from loom.runtime.context import Context
from loom.runtime.event import Event
from loom.runtime.registry import function

__all__ = ["RESPONSE_TYPES", "Commands", "handle", "open_commands"]

RESPONSE_PREFIX = "device.response."
RESPONSE_TYPES = [t.type for t in default_catalog() if t.type.startswith(RESPONSE_PREFIX)]


Commands = Pooled[CommandsSettings]  # ctx.state
open_commands = pooled(CommandsSettings, lambda config: config.commands_connections)


@function(consumes=RESPONSE_TYPES, produces=[], lifespan=open_commands)
async def handle(event: Event, ctx: Context) -> None:
    """Record a device's answer in the audit log of the command it answers."""
    commands: Commands = ctx.state
    data: dict[str, Any] = event.data
    command_id = data.get("command_id")
    device_id = event.device_id or data.get("device_id")
    if not isinstance(command_id, str) or not isinstance(device_id, str):
        ctx.log.debug("commands.not_about_a_command")  # e.g. an error of the device's own
        return
    final = outcome(event.type, data)
    async with connection(commands.pool, "commands") as conn:
        written = await queue.record_response(
            conn, device_id, command_id, final=final,
            result=audit_result(data, commands.settings.commands_result_max_chars),
            responded_at=_answered_at(data, event.time),
        )  # fmt: skip
    log = ctx.log.warning if written == "unknown" else ctx.log.info
    log(f"commands.answer_{written}", command_id=command_id, outcome=final or "progress")


def _answered_at(data: dict[str, Any], fallback: datetime) -> datetime:
    """The device's time of the answer (its ``timestamp``), as a zone-aware time."""
    when = fallback
    with contextlib.suppress(ValueError, TypeError):
        when = datetime.fromisoformat(str(data.get("timestamp")).upper())
    return when if when.tzinfo else when.replace(tzinfo=UTC)
