"""CloudEvents as Loom moves them: built from catalog types, carried over Kafka in binary mode.

On Kafka an event is a binary-mode message: attributes in ``ce_*`` headers, ``data``
as the value, key = the ``partitionkey`` extension (the device id), so Knative
KafkaSources and Brokers read the topics unchanged.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.v1.event import CloudEvent

__all__ = [
    "PARTITION_KEY",
    "RECORDED_TIME",
    "CloudEvent",
    "KafkaRecord",
    "from_kafka",
    "make_event",
    "to_http_binary",
    "to_kafka",
]

PARTITION_KEY = "partitionkey"
RECORDED_TIME = "recordedtime"  # extension: when Loom received the event

KafkaRecord = ce_kafka.KafkaMessage


def make_event(
    type_: str,
    data: Any,
    *,
    source: str,
    device_id: str | None = None,
    id_: str | None = None,
    time: datetime | None = None,
    **extensions: Any,
) -> CloudEvent:
    """A CloudEvent 1.0 with JSON data; ``device_id`` becomes the ``partitionkey``."""
    attributes: dict[str, Any] = {
        "specversion": "1.0",
        "id": id_ or str(uuid.uuid4()),
        "source": source,
        "type": type_,
        "time": time or datetime.now(UTC),
        "datacontenttype": "application/json",
        **extensions,
    }
    if device_id is not None:
        attributes[PARTITION_KEY] = device_id
    return CloudEvent(attributes, data)


def to_kafka(event: BaseCloudEvent) -> KafkaRecord:
    """Binary content mode: ``ce_`` headers, data as value, key = partitionkey."""
    return ce_kafka.to_binary_event(event)


def from_kafka(
    headers: Sequence[tuple[str, str | bytes | None]] | Mapping[str, str | bytes | None] | None,
    key: bytes | str | None,
    value: bytes | None,
) -> BaseCloudEvent:
    """Rebuild the CloudEvent from a consumed binary-mode message."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers or []
    record = KafkaRecord(
        headers={name: raw.encode() if isinstance(raw, str) else raw or b"" for name, raw in pairs},
        key=key,
        value=value or b"",
    )
    return ce_kafka.from_binary_event(record)


def to_http_binary(event: BaseCloudEvent) -> tuple[dict[str, str], bytes]:
    """HTTP binary mode: ``ce-*`` headers (and content-type), data as the body."""
    record = to_kafka(event)
    headers = {
        name if name == "content-type" else "ce-" + name.removeprefix("ce_"): value.decode()
        for name, value in record.headers.items()
    }
    return headers, record.value
