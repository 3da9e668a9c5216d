"""An event's media bytes, inline or from the blob store, checked as they are read."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from loom.runtime.invoke import PoisonEvent
from loom.store.blobs import LocalBlobStore
from loom.store.media import blob_bytes, inline_bytes, media_bytes

CONTENT = b"RIFF" + bytes(range(256))


def test_inline_bytes_decode_base64_and_name_the_field_when_they_do_not() -> None:
    assert inline_bytes(base64.b64encode(CONTENT).decode(), "chunk_data") == CONTENT
    with pytest.raises(PoisonEvent, match=r"^chunk_data is not valid base64: "):
        inline_bytes("not base64!", "chunk_data")


def test_blob_bytes_are_checked_against_their_sha256(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path)
    ref = blobs.put(CONTENT, "audio/wav").as_json()
    assert blob_bytes(blobs, ref, "chunk") == CONTENT
    Path(ref["uri"].removeprefix("file://")).write_bytes(b"altered")
    with pytest.raises(PoisonEvent, match=r"^the chunk's blob .* does not match its sha256$"):
        blob_bytes(blobs, ref, "chunk")
    Path(ref["uri"].removeprefix("file://")).unlink()
    with pytest.raises(PoisonEvent, match=r"^the chunk's blob .* does not exist$"):
        blob_bytes(blobs, ref, "chunk")


def test_a_store_that_fails_otherwise_is_not_poison() -> None:
    class Down:
        def put(self, content: bytes, content_type: str | None = None) -> object:
            raise ConnectionError("store down")

        def get(self, ref: object) -> bytes:
            raise ConnectionError("store down")

    ref = {"uri": "s3://b/k", "sha256": "0" * 64, "size_bytes": 1}
    with pytest.raises(ConnectionError):
        blob_bytes(Down(), ref, "image")  # type: ignore[arg-type]


async def test_media_bytes_read_inline_first_else_the_reference(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path)
    ref = blobs.put(CONTENT).as_json()
    inline = {"image_data": base64.b64encode(b"inline").decode()}
    assert await media_bytes(inline, blobs, inline="image_data", ref="blob_ref",
                             what="image") == b"inline"  # fmt: skip
    assert await media_bytes({"blob_ref": ref}, blobs, inline="image_data", ref="blob_ref",
                             what="image") == CONTENT  # fmt: skip
