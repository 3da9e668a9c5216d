"""``mail``: a fetched email (``external.email.raw``) in, its structure out
(``external.email.parsed``): headers, the text body, the HTML body, and attachments,
whose bytes go to the blob store (``LOOM_STORE_BLOB_URL``) and are referred to by URI
and SHA-256.

Bytes that are no email, a message the parser cannot read (parts nested a thousand
deep, say), a blob that is gone or does not match its SHA-256, are poison
(dead-lettered with the reason): another try would fail the same way. A blob store that
cannot be reached is retried.

Memory: parsing a message of N bytes takes four to seven times N (the bytes, the
parser's lines and joined bodies, the decoded attachments or text). Messages from the
blob store (those over ``LOOM_MAIL_INLINE_MAX_BYTES``) are therefore read and parsed
one at a time per replica, the small inline ones side by side, and a replica asks for
``MEMORY``: room for the largest message the fetcher sends (``LOOM_MAIL_MAX_MESSAGE_BYTES``,
32 MiB: ``loom serve mail`` idles at about 110 MiB and peaks at 230 to 320 MiB with one).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from functions.mail.parse import Attachment, NotAnEmail, ParsedMail, parse_message
from loom.runtime.context import Context
from loom.runtime.event import Event
from loom.runtime.invoke import PoisonEvent
from loom.runtime.registry import function
from loom.settings import LoomSettings, settings_for
from loom.store.blobs import BlobStore, open_blob_store
from loom.store.media import blob_bytes, inline_bytes
from loom.store.settings import StoreSettings

__all__ = ["INPUT", "MEMORY", "OUTPUT", "MailState", "handle", "open_state"]

INPUT = "external.email.raw"
OUTPUT = "external.email.parsed"
MAX_ATTACHMENTS = 500  # the schema's limit on attachments per message
MEMORY = "512Mi"  # see "Memory" above


@dataclass
class MailState:
    """What the function keeps between events: the blob store, and the turn that messages
    from it (the big ones) take, one at a time."""

    blobs: BlobStore
    big: asyncio.Lock = field(default_factory=asyncio.Lock)


@contextlib.asynccontextmanager
async def open_state(settings: LoomSettings) -> AsyncIterator[MailState]:
    """The blob store of LOOM_STORE_BLOB_URL (the store's): raw messages too big to travel
    inline are read from it, attachments written to it."""
    where = settings_for(StoreSettings, settings)
    yield MailState(open_blob_store(where.store_blob_url, where.store_s3_endpoint_url))


@function(consumes=[INPUT], produces=[OUTPUT], lifespan=open_state, memory=MEMORY)
async def handle(event: Event, ctx: Context) -> Event:
    """Headers, text and attachments of a fetched email; attachments go to the blob store."""
    state: MailState = ctx.state
    data = event.data
    async with state.big if "raw" in data else contextlib.nullcontext():
        parsed = await asyncio.to_thread(_read, data, state.blobs)
        kept = parsed.attachments[:MAX_ATTACHMENTS]
        if len(parsed.attachments) > len(kept):
            ctx.log.warning("mail.attachments_dropped", kept=len(kept),
                            dropped=len(parsed.attachments) - len(kept))  # fmt: skip
        attachments = await asyncio.to_thread(_store_attachments, kept, state.blobs)
    return event.derive(OUTPUT, _parsed(data, parsed, attachments), source=ctx.source)


def _read(data: dict[str, Any], blobs: BlobStore) -> ParsedMail:
    """The message parsed; poison where it is no email or the parser gives up on it."""
    raw = _raw_bytes(data, blobs)
    try:
        return parse_message(raw)
    except Exception as exc:  # noqa: BLE001 — another try would fail the same way
        where = f"message {data['mailbox']}/{data['message_uid']}"
        if isinstance(exc, NotAnEmail):
            raise PoisonEvent(f"{where}: {exc}") from None
        raise PoisonEvent(f"{where} cannot be parsed: {type(exc).__name__}: {exc}") from None


def _raw_bytes(data: dict[str, Any], blobs: BlobStore) -> bytes:
    """The message's bytes: inline, or from the blob store (checked against its SHA-256)."""
    if "raw_base64" in data:
        return inline_bytes(data["raw_base64"], "raw_base64")
    return blob_bytes(blobs, data["raw"], "message")


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
        "text_body": parsed.text_body,
        "attachments": attachments,
    }
    if parsed.message_id:
        out["message_id_header"] = parsed.message_id
    if parsed.html_body is not None:
        out["html_body"] = parsed.html_body
    if parsed.thread_id:
        out["thread_id"] = parsed.thread_id
    return out
