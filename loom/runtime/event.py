"""The event a function handles and returns: a CloudEvent with JSON data, made simple."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.v1.event import CloudEvent

from loom.events import PARTITION_KEY

__all__ = ["Event"]

_CORE = ("id", "source", "type", "specversion", "time", "datacontenttype", "dataschema")
_DERIVED = uuid.UUID("6d1f3b2e-8c4a-5e1b-9a7d-4c2f0e6b8a91")


@dataclass(frozen=True)
class Event:
    """A CloudEvent as a handler sees it: attributes as fields, ``data`` as JSON."""

    type: str
    data: Any
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    source: str = "/loom"
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    device_id: str | None = None
    extensions: dict[str, Any] = field(default_factory=dict)

    def derive(self, type_: str, data: Any, *, source: str, index: int = 0) -> Event:
        """An event made from this one: same device and time, ``data.derived_from`` set.

        Its id is a UUID5 of (this id, type, index), so handling the same event again
        (a retry, a replay) makes the same ids, and idempotent writers drop the repeats.
        """
        if isinstance(data, dict) and "derived_from" not in data:
            data = {**data, "derived_from": {"type": self.type, "source": self.source,
                                             "id": self.id}}  # fmt: skip
        return Event(
            type=type_,
            data=data,
            id=str(uuid.uuid5(_DERIVED, f"{self.source}|{self.id}|{type_}|{index}")),
            source=source,
            time=self.time,
            device_id=self.device_id,
        )

    @classmethod
    def from_cloudevent(cls, event: BaseCloudEvent) -> Event:
        attributes = event.get_attributes()
        return cls(
            type=event.get_type(),
            data=event.get_data(),
            id=event.get_id(),
            source=event.get_source(),
            time=attributes.get("time") or datetime.now(UTC),
            device_id=attributes.get(PARTITION_KEY),
            extensions={
                k: v for k, v in attributes.items() if k not in _CORE and k != PARTITION_KEY
            },
        )

    def to_cloudevent(self, dataschema: str | None = None) -> CloudEvent:
        attributes: dict[str, Any] = {
            "specversion": "1.0",
            "id": self.id,
            "source": self.source,
            "type": self.type,
            "time": self.time,
            "datacontenttype": "application/json",
            **self.extensions,
        }
        if dataschema:
            attributes["dataschema"] = dataschema
        if self.device_id is not None:
            attributes[PARTITION_KEY] = self.device_id
        return CloudEvent(attributes, self.data)
