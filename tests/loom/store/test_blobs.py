"""Content-addressed blobs in a local directory and in an S3-compatible store (moto's
server speaks the S3 API over HTTP on a local port)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from loom.errors import ConfigError
from loom.store.blobs import BlobStore, LocalBlobStore, S3BlobStore, open_blob_store

CONTENT = b"\x00\x01RIFF" + bytes(range(256)) * 8
DIGEST = hashlib.sha256(CONTENT).hexdigest()


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    from loom.services._process import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> S3BlobStore:
    import boto3

    for name, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket="loom-blobs")
    store = open_blob_store("s3://loom-blobs/media", s3_endpoint)
    assert isinstance(store, S3BlobStore)
    return store


def _round_trip(store: BlobStore) -> str:
    ref = store.put(CONTENT, "audio/wav")
    again = store.put(CONTENT, "audio/wav")
    assert ref == again
    assert (ref.sha256, ref.size_bytes, ref.content_type) == (DIGEST, len(CONTENT), "audio/wav")
    assert store.get(ref) == CONTENT
    return ref.uri


def test_local_blobs_are_files_named_by_their_hash(tmp_path: Path) -> None:
    store = open_blob_store(f"file://{tmp_path}/blobs")
    assert isinstance(store, LocalBlobStore)
    uri = _round_trip(store)
    assert uri == (tmp_path / "blobs" / "sha256" / DIGEST[:2] / DIGEST[2:4] / DIGEST).as_uri()
    assert [p.name for p in (tmp_path / "blobs").rglob("*") if p.is_file()] == [DIGEST]


def test_s3_blobs_are_objects_named_by_their_hash(s3: S3BlobStore) -> None:
    uri = _round_trip(s3)
    assert uri == f"s3://loom-blobs/media/sha256/{DIGEST[:2]}/{DIGEST[2:4]}/{DIGEST}"
    listed = s3.client.list_objects_v2(Bucket="loom-blobs")["Contents"]
    assert [o["Key"] for o in listed] == [uri.removeprefix("s3://loom-blobs/")]


def test_an_unknown_scheme_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="must start with file:// or s3://"):
        open_blob_store("ftp://example.org/blobs")
