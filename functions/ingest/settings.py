"""Settings of the ingest service (``LOOM_INGEST_*`` besides the shared ``LOOM_*``)."""

from __future__ import annotations

from pydantic import Field

from loom.settings import LoomSettings

__all__ = ["IngestSettings"]


class IngestSettings(LoomSettings):
    """The front door: limits, delivery timeout, auth and rate limits."""

    ingest_max_batch_events: int = Field(
        default=1000, ge=1, le=100_000, description="Most events in one batched request."
    )
    ingest_max_request_bytes: int = Field(
        default=32 * 1024 * 1024,
        ge=1024,
        description="Largest request body of any kind; each event's data has its type's limit.",
    )
    ingest_delivery_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="How long a write waits for the broker's ack before answering 503.",
    )
    ingest_retry_after_seconds: int = Field(
        default=2, ge=1, le=3600, description="Retry-After sent with 503 answers."
    )
    ingest_rate_limit_per_device: float = Field(
        default=0.0,
        ge=0,
        description="Events per second one device may send (burst: 2 s worth); 0 = unlimited.",
    )
    ingest_read_connections: int = Field(
        default=4,
        ge=1,
        le=64,
        description="Connections for reading stored data (GET /events, exports, activity), "
        "apart from those that take events, so reads never starve ingestion.",
    )
    ingest_read_timeout_seconds: float = Field(
        default=60.0, gt=0, description="Longest a query reading stored data may run."
    )
    ingest_token_cache_seconds: float = Field(
        default=30.0,
        ge=0,
        le=3600,
        description="How long a checked token is trusted before asking the database again.",
    )
    ingest_websocket_inflight: int = Field(
        default=16,
        ge=1,
        le=1024,
        description="Audio chunks of one WebSocket awaiting the broker before reading stops.",
    )
    ingest_command_ack_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="How long a command sent over a device's WebSocket waits for its ack "
        "before it is sent again.",
    )
    ingest_command_poll_seconds: float = Field(
        default=10.0,
        gt=0,
        le=600,
        description="How often a waiting device connection looks for new commands besides "
        "being woken by PostgreSQL NOTIFY (the fallback if a notification is missed).",
    )
    ingest_command_max_wait_seconds: float = Field(
        default=60.0,
        ge=0,
        le=600,
        description="Longest `wait` of GET /devices/{id}/commands/next (long-poll).",
    )
    ingest_command_response_max_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=64 * 1024,
        le=1024 * 1024 * 1024,
        description="Most bytes of command data one answer carries: a long-poll batch or a "
        "page of the command audit stops before passing it (one command at least, however "
        "large); the WebSocket sends one command per frame.",
    )
    ingest_command_connections: int = Field(
        default=2,
        ge=1,
        le=32,
        description="Connections for issuing commands, apart from those that take events "
        "and check tokens: a command holds one while Kafka takes its record, so a slow "
        "broker never starves ingestion.",
    )
    ingest_command_issue_wait_seconds: float = Field(
        default=2.0,
        gt=0,
        le=60,
        description="How long issuing a command waits for one of its connections, or for "
        "the device's queue while another command for it is being issued, before 503.",
    )
