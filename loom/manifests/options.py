"""What a generated deployment is made of (names, image, Kafka, defaults) and the helpers
every kind of object is built with."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, TypeVar

from loom.manifests.models import Metadata, Strict

__all__ = ["ManifestOptions", "build", "meta", "slug"]


@dataclass(frozen=True)
class ManifestOptions:
    namespace: str = "loom"
    image: str = "ghcr.io/loom-pipeline/loom:latest"
    bootstrap_servers: str = "loom-kafka-bootstrap.kafka:9092"
    replication_factor: int = 3
    default_partitions: int = 3
    broker: str = "loom"
    database_secret: str = "loom-database"
    retries: int = 5
    backoff: str = "PT0.2S"
    # Defaults of every container, in ConfigMap loom-config-defaults (loom-config overrides).
    environment: str = "production"
    log_level: str = "INFO"
    store_backend: str = "auto"
    blob_url: str = "s3://loom-blobs/"  # a pod's own disk is gone when it is
    maintain_schedule: str = "17 * * * *"  # `loom db maintain`: hourly, off the hour


T = TypeVar("T", bound=Strict)


def build(cls: type[T], **fields: Any) -> T:
    """``cls`` checked strictly from ``fields`` (nested dicts or models)."""
    return cls.model_validate(fields)


def slug(text: str, limit: int = 63) -> str:
    """A DNS-1123 name from ``text``; long ones end in a short hash to stay unique."""
    name = text.replace(".", "-").replace("_", "-").lower()
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return f"{name[: limit - 9].rstrip('-')}-{digest}"


def meta(name: str, o: ManifestOptions, **annotations: str) -> Metadata:
    return build(
        Metadata,
        name=name,
        namespace=o.namespace,
        labels={"app.kubernetes.io/part-of": "loom"},
        annotations=annotations,
    )
