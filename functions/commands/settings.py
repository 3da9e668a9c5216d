"""Settings of the ``commands`` function (``LOOM_COMMANDS_*`` besides the shared ``LOOM_*``)."""

from __future__ import annotations

from pydantic import Field

from loom.settings import LoomSettings

__all__ = ["CommandsSettings"]


class CommandsSettings(LoomSettings):
    """How devices' answers are written into the command audit log."""

    commands_result_max_chars: int = Field(
        default=65_536,
        ge=64,
        le=16 * 1024 * 1024,
        description="Longest string of an answer the audit row keeps (an inline screen "
        "capture is cut to a preview; the whole answer is in its type's table).",
    )
    commands_connections: int = Field(
        default=4, ge=1, le=64, description="PostgreSQL connections of one replica."
    )
