"""Settings of the event store (``LOOM_STORE_*``), on top of the shared ones."""

from __future__ import annotations

from pydantic import Field, field_validator

from loom.settings import LoomSettings

__all__ = ["StoreSettings"]


class StoreSettings(LoomSettings):
    store_blob_url: str = Field(
        default="file://.loom/blobs",
        description="Where media bytes go, content-addressed: file://<directory> "
        "(relative paths from the working directory) or s3://<bucket>/<prefix>.",
    )
    store_s3_endpoint_url: str | None = Field(
        default=None,
        description="Endpoint of an S3-compatible store (MinIO, Ceph, R2); unset for AWS.",
    )
    store_max_batch_rows: int = Field(
        default=5000, ge=1, le=1_000_000, description="Most rows in one group commit."
    )
    store_linger_ms: float = Field(
        default=2.0,
        ge=0,
        le=1000,
        description="Under load, how long a group commit waits for more rows (0: never).",
    )
    store_connections: int = Field(
        default=2, ge=1, le=64, description="Database connections writing group commits."
    )
    store_partitions_ahead_days: int = Field(
        default=3, ge=0, le=365, description="Days of partitions `loom db maintain` makes ahead."
    )
    store_maintain_interval_seconds: float = Field(
        default=3600, gt=0, description="How often `loom dev` runs maintenance."
    )

    @field_validator("store_blob_url")
    @classmethod
    def _check_blob_url(cls, value: str) -> str:
        if not value.startswith(("file://", "s3://")):
            raise ValueError("must start with file:// or s3://")
        return value
