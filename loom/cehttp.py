"""CloudEvents over HTTP: binary, structured and batched modes, strictly checked.

Shared by the ingest service and every function's HTTP host; every problem is a
:class:`~loom.errors.MalformedEvent` naming what is wrong.

The ``cloudevents`` SDK parses binary and structured mode. It is lenient where Loom
is not: it invents an ``id`` when one is missing, so the required attributes are
checked on the raw request first and every problem is named in the error.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

import orjson
from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings import http as ce_http
from cloudevents.core.exceptions import BaseCloudEventException
from cloudevents.core.v1.event import CloudEvent
from dateutil.parser import isoparse

from loom.errors import BodyTooLarge, MalformedEvent

__all__ = [
    "BATCH",
    "STRUCTURED",
    "Mode",
    "check_binary",
    "detect_mode",
    "event_from_json",
    "loads_json",
    "parse_batch",
    "parse_binary",
    "parse_structured",
    "read_body",
]

STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
REQUIRED = ("id", "source", "specversion", "type")
Mode = str  # "binary" | "structured" | "batch"


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def detect_mode(headers: Mapping[str, str]) -> Mode:
    """Which CloudEvents HTTP mode a request uses, from its headers."""
    media = _media_type(headers.get("content-type"))
    if media == BATCH:
        return "batch"
    if media == STRUCTURED:
        return "structured"
    if "ce-specversion" in headers:
        return "binary"
    raise MalformedEvent(
        f"not a CloudEvent: content type {media or '(none)'!r} without ce-* headers; send binary "
        f"mode (ce-id, ce-source, ce-type, ce-specversion headers), {STRUCTURED} or {BATCH}"
    )


def _check_attributes(attrs: Mapping[str, Any], where: str) -> None:
    missing = [name for name in REQUIRED if name not in attrs]
    if missing:
        raise MalformedEvent(f"{where}: missing required attribute(s): {', '.join(missing)}")
    for name in REQUIRED:
        value = attrs[name]
        if not isinstance(value, str) or not value:
            raise MalformedEvent(f"{where}: attribute {name!r} must be a non-empty string")
    if attrs["specversion"] != "1.0":
        raise MalformedEvent(
            f"{where}: specversion {attrs['specversion']!r} is not supported; use '1.0'"
        )


def check_binary(headers: Mapping[str, str]) -> str:
    """Check the required ``ce-*`` headers before the body is read; returns the type."""
    attrs = {k[3:]: v for k, v in headers.items() if k.startswith("ce-")}
    _check_attributes(attrs, "headers")
    return str(attrs["type"])


def parse_binary(headers: Mapping[str, str], body: bytes) -> BaseCloudEvent:
    """Binary mode: attributes in ``ce-*`` headers, data is the body."""
    check_binary(headers)
    media = _media_type(headers.get("content-type"))
    if body and media and not (media == "application/json" or media.endswith("+json")):
        raise MalformedEvent(
            f"data of content type {media!r} is not accepted; send application/json"
        )
    if body:
        loads_json(body, "body")
    try:
        return ce_http.from_binary_event(ce_http.HTTPMessage(headers=dict(headers), body=body))
    except (BaseCloudEventException, ValueError, TypeError) as exc:
        raise MalformedEvent(f"invalid CloudEvent headers: {exc}") from None


def loads_json(body: bytes, what: str) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedEvent(f"{what} is not valid JSON: {exc}") from None


def event_from_json(obj: Any, where: str) -> BaseCloudEvent:
    """One structured-mode event from its decoded JSON object (a batch item).

    Builds the SDK's CloudEvent from the object as the SDK's JSON format would,
    without encoding and decoding the JSON once more.
    """
    if not isinstance(obj, dict):
        raise MalformedEvent(f"{where}: a CloudEvent must be a JSON object")
    _check_attributes(obj, where)
    if "data" in obj and "data_base64" in obj:
        raise MalformedEvent(f"{where}: 'data' and 'data_base64' are mutually exclusive")
    attributes = {k: v for k, v in obj.items() if k not in ("data", "data_base64")}
    try:
        if "time" in attributes:
            attributes["time"] = isoparse(attributes["time"])
        data = (
            base64.b64decode(obj["data_base64"], validate=True)
            if "data_base64" in obj
            else obj.get("data")
        )
        return CloudEvent(attributes, data)
    except (BaseCloudEventException, ValueError, TypeError, binascii.Error) as exc:
        raise MalformedEvent(f"{where}: invalid CloudEvent: {exc}") from None


def parse_structured(body: bytes) -> BaseCloudEvent:
    """Structured mode: the whole event is the JSON body (parsed by the SDK)."""
    obj = loads_json(body, "body")
    if not isinstance(obj, dict):
        raise MalformedEvent("event: a CloudEvent must be a JSON object")
    _check_attributes(obj, "event")
    if "data" in obj and "data_base64" in obj:
        raise MalformedEvent("event: 'data' and 'data_base64' are mutually exclusive")
    try:
        return ce_http.from_structured_event(
            ce_http.HTTPMessage(headers={"content-type": STRUCTURED}, body=body)
        )
    except (BaseCloudEventException, ValueError, TypeError) as exc:
        raise MalformedEvent(f"event: invalid CloudEvent: {exc}") from None


def parse_batch(body: bytes, max_events: int) -> list[Any]:
    """The batch as a list of raw JSON values; each is parsed (and may fail) on its own."""
    items = loads_json(body, "batch")
    if not isinstance(items, list):
        raise MalformedEvent(f"a {BATCH} body must be a JSON array of events")
    if not items:
        raise MalformedEvent("the batch is empty")
    if len(items) > max_events:
        raise MalformedEvent(
            f"the batch has {len(items)} events; at most {max_events} are accepted"
        )
    return items


async def read_body(request: Any, limit: int) -> bytes:
    """A Starlette request's body, refused as soon as it is known to exceed ``limit``."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"body of {declared} bytes is over the limit of {limit}", limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"body is over the limit of {limit} bytes", limit)
        chunks.append(chunk)
    return b"".join(chunks)
