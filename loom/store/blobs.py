"""Content-addressed storage for media bytes that rows only refer to.

A blob is named by the SHA-256 of its bytes, so writing the same bytes twice (a
redelivery, a replay) is one file, and a reference can be checked against what
it points to. ``file://`` keeps them in a local directory (the default); ``s3://``
in any S3-compatible store through boto3 (the ``s3`` extra).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from loom.errors import ConfigError

__all__ = ["BlobRef", "BlobStore", "LocalBlobStore", "S3BlobStore", "open_blob_store"]


@dataclass(frozen=True)
class BlobRef:
    uri: str
    sha256: str
    size_bytes: int
    content_type: str | None = None

    def as_json(self) -> dict[str, Any]:
        ref: dict[str, Any] = {"uri": self.uri, "sha256": self.sha256}
        ref["size_bytes"] = self.size_bytes
        if self.content_type:
            ref["content_type"] = self.content_type
        return ref


class BlobStore(Protocol):
    def put(self, content: bytes, content_type: str | None = None) -> BlobRef: ...

    def get(self, ref: BlobRef) -> bytes: ...


def _key(digest: str) -> str:
    return f"sha256/{digest[:2]}/{digest[2:4]}/{digest}"


class LocalBlobStore:
    """Blobs as files under ``root``; written to a temporary name, then renamed."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def put(self, content: bytes, content_type: str | None = None) -> BlobRef:
        digest = hashlib.sha256(content).hexdigest()
        path = self.root / _key(digest)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".incoming-")
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(content)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        return BlobRef(path.as_uri(), digest, len(content), content_type)

    def get(self, ref: BlobRef) -> bytes:
        return Path(urlparse(ref.uri).path).read_bytes()


class S3BlobStore:
    """Blobs as objects under ``s3://bucket/prefix/sha256/…`` (AWS or S3-compatible)."""

    def __init__(self, bucket: str, prefix: str, endpoint_url: str | None = None) -> None:
        try:
            import boto3
        except ImportError as exc:
            raise ConfigError(
                "LOOM_STORE_BLOB_URL is s3:// but boto3 is not installed: "
                "`uv sync --extra s3` or `pip install 'loom[s3]'`"
            ) from exc
        self.bucket, self.prefix = bucket, prefix.strip("/")
        self.client = boto3.client("s3", endpoint_url=endpoint_url)

    def _name(self, digest: str) -> str:
        return f"{self.prefix}/{_key(digest)}" if self.prefix else _key(digest)

    def put(self, content: bytes, content_type: str | None = None) -> BlobRef:
        digest = hashlib.sha256(content).hexdigest()
        extra = {"ContentType": content_type} if content_type else {}
        self.client.put_object(Bucket=self.bucket, Key=self._name(digest), Body=content, **extra)
        return BlobRef(f"s3://{self.bucket}/{self._name(digest)}", digest, len(content),
                       content_type)  # fmt: skip

    def get(self, ref: BlobRef) -> bytes:
        where = urlparse(ref.uri)
        body = self.client.get_object(Bucket=where.netloc, Key=where.path.lstrip("/"))["Body"]
        return bytes(body.read())


def open_blob_store(url: str, endpoint_url: str | None = None) -> BlobStore:
    """The store ``url`` names: ``file://<dir>`` or ``s3://<bucket>[/<prefix>]``."""
    if url.startswith("file://"):
        return LocalBlobStore(Path(url.removeprefix("file://")))
    if url.startswith("s3://"):
        where = urlparse(url)
        return S3BlobStore(where.netloc, where.path, endpoint_url)
    raise ConfigError(f"blob store URL {url!r} must start with file:// or s3://")
