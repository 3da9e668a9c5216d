"""From a parsed CloudEvent to a record Kafka can take: every check an event must pass.

Checks, in order: the type is in the catalog and devices may send it; ``data`` is
JSON within the type's size limit and valid against its schema; the device is the
token's own (a device token may only speak for itself); then the Kafka key is the
device id and the record is binary-mode (``ce_`` headers, data as the value).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.formats.json import JSONFormat

from functions.ingest.auth import Principal
from functions.ingest.problems import BadRequest, Forbidden, InvalidData, TooLarge, TooManyRequests
from loom.catalog import Catalog, EventType
from loom.events import PARTITION_KEY, RECORDED_TIME
from loom.kafka import OutgoingRecord

__all__ = ["MAX_ATTRIBUTE_BYTES", "Accepted", "Acceptor", "RateLimiter", "check_data"]

MAX_ATTRIBUTE_BYTES = 8 * 1024  # CloudEvent attributes become Kafka headers


@dataclass(frozen=True)
class Accepted:
    """An event that passed every check, ready to produce."""

    id: str
    source: str
    type: EventType
    device_id: str | None
    record: OutgoingRecord


class _Checked:
    """An event that passed the checks, with its data already serialised: what the SDK's
    Kafka binding needs to write it in binary mode without encoding the data again."""

    def __init__(self, attributes: dict[str, Any], value: bytes) -> None:
        self._attributes = attributes
        self._value = value

    def get_attributes(self) -> dict[str, Any]:
        return self._attributes

    def get_extension(self, name: str) -> Any:
        return self._attributes.get(name)

    def get_data(self) -> bytes:
        return self._value


_FORMAT = JSONFormat()


def _data_of(event: BaseCloudEvent) -> Any:
    data = event.get_data()
    if isinstance(data, bytes | str):
        try:
            return orjson.loads(data) if data else None
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"data is not valid JSON: {exc}") from None
    return data


def check_data(catalog: Catalog, event_type: EventType, data: Any, size: int) -> None:
    """``data`` (``size`` bytes as JSON) fits ``event_type``: within its size limit
    (else :class:`TooLarge`) and valid against its schema (else :class:`InvalidData`,
    every violation listed, the first in the detail)."""
    if size > event_type.max_bytes:
        raise TooLarge(
            f"data of {event_type.type} is {size} bytes; the limit is {event_type.max_bytes}",
            limit_bytes=event_type.max_bytes,
        )
    violations = catalog.violations(event_type.type, data)
    if violations:
        first = violations[0]
        raise InvalidData(
            f"{len(violations)} problem(s) in data, first at "
            f"'{first.pointer or '/'}': {first.message}",
            errors=[{"pointer": v.pointer, "message": v.message} for v in violations],
        )


class Acceptor:
    def __init__(self, catalog: Catalog, topic_prefix: str) -> None:
        self.catalog = catalog
        self.prefix = topic_prefix

    def event_type(self, name: str) -> EventType:
        event_type = self.catalog[name]
        if not event_type.ingest:
            raise BadRequest(f"{name!r} is made by Loom's own functions; devices cannot send it")
        return event_type

    def accept(
        self, event: BaseCloudEvent, principal: Principal, raw: bytes | None = None
    ) -> Accepted:
        """Check ``event``; ``raw`` is its data exactly as sent (binary mode), kept as is."""
        event_type = self.event_type(event.get_type())
        attributes = dict(event.get_attributes())
        # (time is a datetime of fixed size; every other attribute is a string)
        attribute_bytes = sum(len(k) + len(v) for k, v in attributes.items() if isinstance(v, str))
        if attribute_bytes > MAX_ATTRIBUTE_BYTES:
            raise TooLarge(
                f"the event's attributes take {attribute_bytes} bytes; the limit is "
                f"{MAX_ATTRIBUTE_BYTES} (put content in data)",
                limit_bytes=MAX_ATTRIBUTE_BYTES,
            )
        data = _data_of(event)
        try:
            value = raw if raw is not None else orjson.dumps(data)
        except (orjson.JSONEncodeError, TypeError) as exc:
            raise BadRequest(f"data cannot be stored as JSON: {exc}") from None
        check_data(self.catalog, event_type, data, len(value))
        device_id = self._device(event, data, principal, event_type)
        if device_id is not None:
            attributes[PARTITION_KEY] = device_id
        attributes["datacontenttype"] = "application/json"
        attributes["dataschema"] = event_type.schema_id  # the schema it was checked against
        # When Loom received it (the CloudEvents `recordedtime` extension; the store's
        # received_at). Ingest's own clock: whatever a device put there is replaced.
        attributes[RECORDED_TIME] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        record = ce_kafka.to_binary(_Checked(attributes, value), _FORMAT)
        return Accepted(
            id=event.get_id(),
            source=event.get_source(),
            type=event_type,
            device_id=device_id,
            record=OutgoingRecord.binary(event_type.topic(self.prefix), record),
        )

    @staticmethod
    def _device(
        event: BaseCloudEvent, data: Any, principal: Principal, event_type: EventType
    ) -> str | None:
        claimed = event.get_extension(PARTITION_KEY)
        in_data = data.get("device_id") if isinstance(data, dict) else None
        if principal.device_id is not None:
            for what, value in (("partitionkey", claimed), ("data.device_id", in_data)):
                if value is not None and value != principal.device_id:
                    raise Forbidden(
                        f"{what} {value!r} is not this token's device {principal.device_id!r}"
                    )
            # (source, id) identifies an event downstream: a device may not use another
            # device's source, or it could shadow that device's events.
            source, own = event.get_source(), f"/devices/{principal.device_id}"
            if (
                source.startswith("/devices/")
                and source != own
                and not source.startswith(own + "/")
            ):
                raise Forbidden(f"source {source!r} belongs to another device; use {own!r}")
            return principal.device_id
        device_id = claimed or in_data
        if event_type.keyed_by_device and not device_id:
            raise BadRequest(
                f"{event_type.type} is keyed by device: set the partitionkey extension or "
                "data.device_id"
            )
        return str(device_id) if device_id else None


class RateLimiter:
    """A token bucket per device: ``rate`` events/s, bursts of two seconds' worth."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.burst = max(1.0, 2 * rate)
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, device_id: str | None, n: int = 1) -> None:
        if not self.rate or device_id is None:
            return
        now = time.monotonic()
        tokens, last = self._buckets.get(device_id, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        # A batch larger than the burst may go through on a full bucket and leave a debt
        # that later requests wait out; otherwise it could never pass.
        if tokens < min(n, self.burst):
            wait = (min(n, self.burst) - tokens) / self.rate
            self._buckets[device_id] = (tokens, now)
            raise TooManyRequests(
                f"device {device_id!r} is over its limit of {self.rate:g} events/s",
                retry_after=max(1, round(wait + 0.5)),
            )
        self._buckets[device_id] = (tokens - n, now)
