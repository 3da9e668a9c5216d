"""The bytes of an event's media: inline as base64, or a reference into the blob store.

Events carry small media inline (``chunk_data``, ``image_data``, ``raw_base64`` …) and big
media as a :class:`~loom.store.blobs.BlobRef` in JSON (``uri``, ``sha256``, ``size_bytes``,
``content_type``). Reading either checks what it reads: base64 that does not decode, a
blob that is gone or whose bytes do not match its sha256 are :class:`PoisonEvent` (another
try would fail the same way). Any other error of the store (one that cannot be reached)
is left to propagate, so the delivery is retried.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
from collections.abc import Mapping
from typing import Any

from loom.runtime.invoke import PoisonEvent
from loom.store.blobs import BlobRef, BlobStore

__all__ = ["blob_bytes", "inline_bytes", "media_bytes"]


def inline_bytes(text: str, name: str) -> bytes:
    """``text`` decoded from base64; poison ("<name> is not valid base64: …") if it is not."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise PoisonEvent(f"{name} is not valid base64: {exc}") from None


def blob_bytes(blobs: BlobStore, ref: Mapping[str, Any], what: str) -> bytes:
    """The bytes of the blob that ``ref`` (a blob reference as events carry it) names,
    checked against its sha256; poison ("the <what>'s blob <uri> does not exist", "… does
    not match its sha256") if it is gone or altered. Blocking: run it in a thread."""
    blob = BlobRef(ref["uri"], ref["sha256"], ref.get("size_bytes", 0), ref.get("content_type"))
    try:
        raw = blobs.get(blob)
    except FileNotFoundError:
        raise PoisonEvent(f"the {what}'s blob {blob.uri} does not exist") from None
    if hashlib.sha256(raw).hexdigest() != blob.sha256:
        raise PoisonEvent(f"the {what}'s blob {blob.uri} does not match its sha256")
    return raw


async def media_bytes(
    data: Mapping[str, Any], blobs: BlobStore, *, inline: str, ref: str, what: str
) -> bytes:
    """The bytes of ``data[inline]`` (base64) if it is there, else of the blob that
    ``data[ref]`` names (read in a thread); see :func:`inline_bytes` and :func:`blob_bytes`."""
    if inline in data:
        return inline_bytes(data[inline], inline)
    return await asyncio.to_thread(blob_bytes, blobs, data[ref], what)
