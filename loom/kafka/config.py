"""confluent-kafka client configuration derived from settings and the catalog."""

from __future__ import annotations

import logging
from typing import Any

from loom.settings import LoomSettings

__all__ = ["MAX_MESSAGE_BYTES", "admin_config", "consumer_config", "producer_config"]

# The catalog's largest type (media) plus envelope; topics allow the same.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


def _base(settings: LoomSettings, client_id: str) -> dict[str, Any]:
    return {
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        "client.id": client_id,
        # librdkafka's own log lines go through logging (JSON), warnings and up.
        "log_level": 4,
        "logger": logging.getLogger("loom.librdkafka"),
    }


def producer_config(
    settings: LoomSettings, client_id: str = "loom", **extra: Any
) -> dict[str, Any]:
    """An idempotent producer that reports success only once every in-sync replica has it."""
    return {
        **_base(settings, client_id),
        "enable.idempotence": True,
        "acks": "all",
        "compression.type": "lz4",
        "linger.ms": 5,
        "message.timeout.ms": 30_000,
        "message.max.bytes": MAX_MESSAGE_BYTES,
        **extra,
    }


def consumer_config(
    settings: LoomSettings, group_id: str, client_id: str = "loom", **extra: Any
) -> dict[str, Any]:
    """A consumer that commits only what the caller says it has handled."""
    return {
        **_base(settings, client_id),
        "group.id": group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        **extra,
    }


def admin_config(settings: LoomSettings, client_id: str = "loom-admin") -> dict[str, Any]:
    return _base(settings, client_id)
