"""An event as the row the store writes: checked times, media moved out, JSON ready."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from psycopg.types.json import Jsonb

from loom.events import RECORDED_TIME
from loom.runtime.event import Event
from loom.runtime.invoke import PoisonEvent
from loom.store.blobs import BlobStore
from loom.store.tables import EventTable

__all__ = ["MAX_CLOCK_SKEW", "expired", "make_row", "move_blobs"]

# An event from further ahead than this is a device clock gone wrong, not the future.
MAX_CLOCK_SKEW = timedelta(days=1)

_CONTENT_TYPES = {
    "wav": "audio/wav", "pcm": "audio/L16", "opus": "audio/opus", "mp3": "audio/mpeg",
    "flac": "audio/flac", "jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp",
}  # fmt: skip


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def expired(event: Event, table: EventTable, now: datetime) -> bool:
    """Older than its type's retention: maintenance would drop it at once, so it is not
    stored (it is past its retention in Kafka too). Too far ahead is poison."""
    moment = _aware(event.time)
    if moment > now + MAX_CLOCK_SKEW:
        raise PoisonEvent(
            f"time {moment.isoformat()} is more than {MAX_CLOCK_SKEW.days} day ahead of "
            "the store's clock (a device clock gone wrong?)"
        )
    return moment < now - table.retention


def _json(data: Any) -> bytes:
    try:
        return orjson.dumps(data)
    except TypeError:  # integers beyond 64 bits: PostgreSQL's numeric holds them
        return json.dumps(data, separators=(",", ":")).encode()


def _as_is(data: bytes) -> bytes:
    return data


def make_row(event: Event, data: Any, schema_version: str) -> tuple[Any, ...]:
    """The staged columns: time, device_id, source, id, received_at, schema_version, data."""
    received = event.extensions.get(RECORDED_TIME)
    if isinstance(received, str):
        try:
            received = datetime.fromisoformat(received)
        except ValueError:
            received = None
    if not isinstance(received, datetime):
        received = datetime.now(UTC)
    version = data.get("schema_version") if isinstance(data, dict) else None
    return (
        _aware(event.time),
        event.device_id,
        event.source,
        event.id,
        _aware(received),
        str(version or schema_version),
        Jsonb(_json(data), dumps=_as_is),  # JSON already: sent as it is
    )


def move_blobs(data: dict[str, Any], table: EventTable, blobs: BlobStore) -> dict[str, Any]:
    """``data`` with each inline base64 field replaced by a reference to its bytes, which
    are put in ``blobs`` (content-addressed: the same bytes twice are one blob)."""
    data = dict(data)
    for blob in table.blobs:
        inline = data.pop(blob.inline, None)
        if not isinstance(inline, str):
            continue
        try:
            content = base64.b64decode(inline, validate=True)
        except binascii.Error as exc:
            raise PoisonEvent(f"{blob.inline} is not valid base64: {exc}") from None
        fmt = data.get("format")
        content_type = _CONTENT_TYPES.get(fmt) if isinstance(fmt, str) else None
        data[blob.ref] = blobs.put(content, content_type).as_json()
    return data
