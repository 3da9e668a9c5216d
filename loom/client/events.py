"""Events as the client sends them (structured-mode CloudEvent JSON) and what ingest says.

An event gets its ``id`` when it is built (or queued), so sending it again after a
lost answer is the same event, deduplicated downstream by ``source`` + ``id``.
Missing attributes are filled in: ``specversion``, ``id`` (a UUID), ``source``
(``/devices/<device_id>`` when the client knows its device), ``time`` (the data's
``timestamp`` if it has one, else now) and, as ingest's REST routes do, a JSON
object's ``device_id`` and ``timestamp`` (every catalog schema needs them).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from dateutil.parser import isoparse

from loom.client.errors import ClientError

__all__ = ["BatchResult", "EventResult", "FlushResult", "chunks", "complete_event", "rfc3339"]

DEFAULT_SOURCE = "/loom/client"


def rfc3339(when: datetime) -> str:
    """``when`` as RFC 3339 in UTC (a naive time is taken as UTC)."""
    aware = when if when.tzinfo else when.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _time_of(data: Any) -> str | None:
    stamp = data.get("timestamp") if isinstance(data, dict) else None
    if not isinstance(stamp, str):
        return None
    try:
        when = isoparse(stamp)
    except ValueError:
        return None  # the schema check names a bad timestamp
    return rfc3339(when) if when.tzinfo else None


def complete_event(
    event: Mapping[str, Any], *, device_id: str | None = None, source: str | None = None
) -> dict[str, Any]:
    """A copy of ``event`` (CloudEvent attributes and ``data``) with what is missing filled in."""
    out = dict(event)
    if not isinstance(out.get("type"), str) or not out["type"]:
        raise ClientError("an event needs a 'type', e.g. device.sensor.gps.raw")
    out.setdefault("specversion", "1.0")
    if not out.get("id"):
        out["id"] = str(uuid.uuid4())
    if not out.get("source"):
        out["source"] = source or (f"/devices/{device_id}" if device_id else DEFAULT_SOURCE)
    data = out.get("data")
    if isinstance(out.get("time"), datetime):
        out["time"] = rfc3339(out["time"])
    elif not out.get("time"):
        out["time"] = _time_of(data) or rfc3339(datetime.now(UTC))
    if isinstance(data, dict):
        data = dict(data)
        if device_id is not None:
            data.setdefault("device_id", device_id)
        data.setdefault("timestamp", out["time"])
        out["data"] = data
    if "data" in out or "data_base64" in out:
        out.setdefault("datacontenttype", "application/json")
    if device_id is not None:
        out.setdefault("partitionkey", device_id)
    return out


def encoded_size(event: Mapping[str, Any]) -> int:
    return len(orjson.dumps(event))


def chunks(
    events: Sequence[Mapping[str, Any]], max_events: int, max_bytes: int
) -> Iterator[list[int]]:
    """Indices of ``events`` in order, cut into batches of at most ``max_events`` events
    and about ``max_bytes`` of JSON (an event larger than that goes alone)."""
    batch: list[int] = []
    size = 2
    for index, event in enumerate(events):
        one = encoded_size(event) + 1
        if batch and (len(batch) >= max_events or size + one > max_bytes):
            yield batch
            batch, size = [], 2
        batch.append(index)
        size += one
    if batch:
        yield batch


@dataclass(frozen=True)
class EventResult:
    """What happened to one event.

    ``status`` is ingest's answer for it (0 when there was none); ``retryable`` says
    whether sending it again unchanged may work (429, 503, no answer); ``problem`` is
    the problem+json of a refused event; ``queued`` marks an event that waits in the
    on-disk queue because ingest could not be reached.
    """

    id: str
    status: int
    accepted: bool
    index: int = 0
    retryable: bool = False
    problem: dict[str, Any] | None = None
    topic: str | None = None
    queued: bool = False

    @property
    def detail(self) -> str | None:
        if self.problem is None:
            return None
        return str(self.problem.get("detail") or self.problem.get("title") or "")

    @property
    def errors(self) -> list[dict[str, Any]]:
        errors = (self.problem or {}).get("errors")
        return [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []


@dataclass(frozen=True)
class BatchResult:
    """Every event's outcome, in the order given; ``retried`` counts events sent again."""

    results: list[EventResult]
    retried: int = 0

    @property
    def accepted(self) -> list[EventResult]:
        return [r for r in self.results if r.accepted]

    @property
    def rejected(self) -> list[EventResult]:
        return [r for r in self.results if not r.accepted]

    @property
    def ok(self) -> bool:
        return all(r.accepted for r in self.results)


@dataclass(frozen=True)
class FlushResult:
    """A flush of the on-disk queue that emptied it: how many ingest took, which it
    refused for good (moved to the queue's ``rejected`` list), how many were sent again."""

    sent: int = 0
    rejected: list[EventResult] = field(default_factory=list)
    retried: int = 0
