"""``mail``: a fetched email (``external.email.raw``) in, its structure out
(``external.email.parsed``): headers, the text body, the HTML body, and attachments,
whose bytes go to the blob store (``LOOM_STORE_BLOB_URL``) and are referred to by URI
and SHA-256.

Bytes that are no email, a blob that is gone or does not match its SHA-256, are
poison (dead-lettered with the reason); a blob store that cannot be reached is retried.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from functions.mail.parse import Attachment, NotAnEmail, ParsedMail, parse_message
from loom.runtime.context import Context
from loom.runtime.event import Event
from loom.runtime.invoke import PoisonEvent
from loom.runtime.registry import function
from loom.settings import LoomSettings, settings_for
from loom.store.blobs import BlobRef, BlobStore, open_blob_store
from loom.store.settings import StoreSettings

__all__ = ["INPUT", "OUTPUT", "handle", "open_blobs"]

INPUT = "external.email.raw"
OUTPUT = "external.email.parsed"
# The schema's limits on the bodies and on attachments per message.
TEXT_CHARS, HTML_CHARS, MAX_ATTACHMENTS = 10_000_000, 20_000_000, 500


@asynccontextmanager
async def open_blobs(settings: LoomSettings) -> AsyncIterator[BlobStore]:
    """The blob store of LOOM_STORE_BLOB_URL (the store's): raw messages too big to travel
    inline are read from it, attachments written to it."""
    where = settings_for(StoreSettings, settings)
    yield open_blob_store(where.store_blob_url, where.store_s3_endpoint_url)


@function(consumes=[INPUT], produces=[OUTPUT], lifespan=open_blobs)
async def handle(event: Event, ctx: Context) -> Event:
    """Headers, text and attachments of a fetched email; attachments go to the blob store."""
    blobs: BlobStore = ctx.state
    data = event.data
    raw = await asyncio.to_thread(_raw_bytes, data, blobs)
    try:
        parsed = await asyncio.to_thread(parse_message, raw)
    except NotAnEmail as exc:
        raise PoisonEvent(f"message {data['mailbox']}/{data['message_uid']}: {exc}") from None
    kept = parsed.attachments[:MAX_ATTACHMENTS]
    if len(parsed.attachments) > len(kept):
        ctx.log.warning("mail.attachments_dropped", kept=len(kept),
                        dropped=len(parsed.attachments) - len(kept))  # fmt: skip
    attachments = await asyncio.to_thread(_store_attachments, kept, blobs)
    return event.derive(OUTPUT, _parsed(data, parsed, attachments), source=ctx.source)


def _raw_bytes(data: dict[str, Any], blobs: BlobStore) -> bytes:
    """The message's bytes: inline, or from the blob store (checked against its SHA-256)."""
    if "raw_base64" in data:
        try:
            return base64.b64decode(data["raw_base64"], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise PoisonEvent(f"raw_base64 is not valid base64: {exc}") from None
    given = data["raw"]
    ref = BlobRef(given["uri"], given["sha256"], given.get("size_bytes", 0),
                  given.get("content_type"))  # fmt: skip
    try:
        content = blobs.get(ref)
    except FileNotFoundError:
        raise PoisonEvent(f"the message's blob {ref.uri} does not exist") from None
    if hashlib.sha256(content).hexdigest() != ref.sha256:
        raise PoisonEvent(f"the message's blob {ref.uri} does not match its sha256")
    return content


def _store_attachments(attachments: list[Attachment], blobs: BlobStore) -> list[dict[str, Any]]:
    stored = []
    for part in attachments:
        ref = blobs.put(part.content, part.content_type)
        stored.append({"filename": part.filename, "content_type": part.content_type,
                       "size_bytes": len(part.content), "blob": ref.as_json()})  # fmt: skip
    return stored


def _parsed(
    data: dict[str, Any], parsed: ParsedMail, attachments: list[dict[str, Any]]
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "schema_version": "1.0",
        "timestamp": data["timestamp"],
        "account": data["account"],
        "mailbox": data["mailbox"],
        "message_uid": data["message_uid"],
        "from": parsed.sender,
        "to": parsed.to,
        "cc": parsed.cc,
        "subject": parsed.subject,
        # No (readable) Date header: when the server received it.
        "date": parsed.date.isoformat() if parsed.date else data["timestamp"],
        "text_body": parsed.text_body[:TEXT_CHARS],
        "attachments": attachments,
    }
    if parsed.message_id:
        out["message_id_header"] = parsed.message_id
    if parsed.html_body is not None:
        out["html_body"] = parsed.html_body[:HTML_CHARS]
    if parsed.thread_id:
        out["thread_id"] = parsed.thread_id
    return out
