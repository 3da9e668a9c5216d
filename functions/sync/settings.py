"""Settings of the ``sync`` function (``LOOM_SYNC_*`` besides the shared ``LOOM_*``)."""

from __future__ import annotations

from pydantic import Field

from loom.settings import LoomSettings

__all__ = ["SyncSettings"]


class SyncSettings(LoomSettings):
    """How broadcasts are fanned out to the other devices' queues."""

    sync_connections: int = Field(
        default=2, ge=1, le=64, description="PostgreSQL connections of one replica."
    )
