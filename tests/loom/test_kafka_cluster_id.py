"""The KRaft cluster id given to the storage tool on the command line."""

from __future__ import annotations

import uuid

import pytest

from loom.services import kafka


def test_a_cluster_id_never_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    drawn = iter([uuid.UUID(bytes=b"\xf8" + bytes(15)), uuid.UUID(bytes=b"\x10" + bytes(15))])
    monkeypatch.setattr(kafka.uuid, "uuid4", lambda: next(drawn))
    assert kafka._cluster_id() == "EAAAAAAAAAAAAAAAAAAAAA"  # the first draw, "-AAA…", was refused
