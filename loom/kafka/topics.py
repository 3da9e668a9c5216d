"""Create, list and describe the catalog's topics on a broker, idempotently."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourceType,
)

from loom.catalog import Catalog, EventType
from loom.errors import ServiceError
from loom.kafka.config import admin_config
from loom.settings import LoomSettings

__all__ = ["TopicInfo", "create_topics", "describe_topics", "list_topics", "topic_config"]

_TIMEOUT = 10.0


@dataclass(frozen=True)
class TopicInfo:
    """What the broker says about one topic."""

    name: str
    partitions: int
    replication_factor: int
    config: dict[str, str]


# Room for CloudEvent headers and record-batch framing around the largest `data`.
_ENVELOPE_BYTES = 64 * 1024
_BROKER_DEFAULT_MAX_MESSAGE = 1024 * 1024


def topic_config(event_type: EventType, replication_factor: int = 1) -> dict[str, str]:
    """Topic-level configs from the catalog: retention, compression, largest message.

    ``min.insync.replicas`` is 2 where there are replicas to spare, so that an
    ``acks=all`` write is on two brokers before it is acknowledged.
    """
    config = {
        "retention.ms": str(event_type.retention_ms),
        "compression.type": event_type.compression,
        "cleanup.policy": "delete",
        "min.insync.replicas": str(min(2, replication_factor)),
    }
    largest = event_type.max_bytes + _ENVELOPE_BYTES
    if largest > _BROKER_DEFAULT_MAX_MESSAGE:
        config["max.message.bytes"] = str(largest)
    return config


def _admin(settings: LoomSettings) -> AdminClient:
    return AdminClient(admin_config(settings))


def _wait(futures: Mapping[str, Future[Any]]) -> dict[str, Exception]:
    failed: dict[str, Exception] = {}
    for name, future in futures.items():
        try:
            future.result(timeout=_TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - report every failure, not just the first
            failed[name] = exc
    return failed


def create_topics(
    catalog: Catalog, settings: LoomSettings, types: Iterable[EventType] | None = None
) -> tuple[list[str], list[str]]:
    """Create every catalog topic that is missing; bring configs of existing ones in line.

    Returns (created, updated). Raises ServiceError naming each topic that failed.
    """
    admin = _admin(settings)
    wanted = list(types if types is not None else catalog)
    prefix = settings.kafka_topic_prefix
    try:
        existing = set(admin.list_topics(timeout=_TIMEOUT).topics)
    except KafkaException as exc:
        raise ServiceError(
            f"cannot reach Kafka at {settings.kafka_bootstrap_servers}: {exc}"
        ) from exc
    new = [
        NewTopic(
            t.topic(prefix),
            num_partitions=t.partitions_or(settings.kafka_default_partitions),
            replication_factor=settings.kafka_default_replication_factor,
            config=topic_config(t, settings.kafka_default_replication_factor),
        )
        for t in wanted
        if t.topic(prefix) not in existing
    ]
    failed = _wait(admin.create_topics(new, request_timeout=_TIMEOUT)) if new else {}
    failed = {n: e for n, e in failed.items() if "TOPIC_ALREADY_EXISTS" not in str(e)}
    updates = [
        ConfigResource(
            ResourceType.TOPIC,
            t.topic(prefix),
            incremental_configs=[
                ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)
                for key, value in topic_config(t, settings.kafka_default_replication_factor).items()
            ],
        )
        for t in wanted
        if t.topic(prefix) in existing
    ]
    if updates:
        altered = admin.incremental_alter_configs(updates, request_timeout=_TIMEOUT)
        for resource, future in altered.items():
            try:
                future.result(timeout=_TIMEOUT)
            except KafkaException as exc:
                failed[resource.name] = exc
    if failed:
        detail = "\n".join(f"  {name}: {exc}" for name, exc in sorted(failed.items()))
        raise ServiceError(f"{len(failed)} topic(s) could not be created or updated:\n{detail}")
    _wait_for_leaders(admin, [t.topic for t in new])
    return [t.topic for t in new], [r.name for r in updates]


def _wait_for_leaders(admin: AdminClient, names: list[str], timeout: float = 30.0) -> None:
    """Return once every partition of ``names`` has a leader, so writes can start at once."""
    deadline = time.monotonic() + timeout
    waiting = set(names)
    while waiting and time.monotonic() < deadline:
        topics = admin.list_topics(timeout=_TIMEOUT).topics
        waiting = {
            name for name in waiting
            if name not in topics or topics[name].error is not None
            or any(p.leader < 0 for p in topics[name].partitions.values())
        }  # fmt: skip
        if waiting:
            time.sleep(0.2)
    if waiting:
        raise ServiceError(
            f"no partition leader within {timeout:.0f}s for: {', '.join(sorted(waiting))}"
        )


def list_topics(settings: LoomSettings) -> list[str]:
    """Names of the topics on the broker (internal ones left out)."""
    try:
        names = _admin(settings).list_topics(timeout=_TIMEOUT).topics
    except KafkaException as exc:
        raise ServiceError(
            f"cannot reach Kafka at {settings.kafka_bootstrap_servers}: {exc}"
        ) from exc
    return sorted(name for name in names if not name.startswith("__"))


def describe_topics(settings: LoomSettings, names: Iterable[str]) -> list[TopicInfo]:
    """Partitions, replication and the non-default configs of ``names``."""
    admin = _admin(settings)
    names = list(names)
    try:
        metadata = admin.list_topics(timeout=_TIMEOUT).topics
    except KafkaException as exc:
        raise ServiceError(
            f"cannot reach Kafka at {settings.kafka_bootstrap_servers}: {exc}"
        ) from exc
    missing = [n for n in names if n not in metadata]
    if missing:
        raise ServiceError(f"no such topic(s) on the broker: {', '.join(missing)}")
    resources = [ConfigResource(ResourceType.TOPIC, n) for n in names]
    configs: dict[str, dict[str, str]] = {}
    for resource, future in admin.describe_configs(resources, request_timeout=_TIMEOUT).items():
        entries = future.result(timeout=_TIMEOUT)
        configs[resource.name] = {
            key: str(entry.value) for key, entry in entries.items() if not entry.is_default
        }
    infos = []
    for name in names:
        partitions = metadata[name].partitions
        replicas = len(next(iter(partitions.values())).replicas) if partitions else 0
        infos.append(TopicInfo(name, len(partitions), replicas, configs.get(name, {})))
    return infos
