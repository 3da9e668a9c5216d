"""The on-disk queue: survives restarts, keeps order, is bounded, deletes only what was taken."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from loom.client import (
    EventQueue,
    LoomClient,
    QueueFull,
    RetryPolicy,
    Unavailable,
    default_queue_path,
)
from tests.loom.client.fake_ingest import closed_port, problem, running

FAST = RetryPolicy(attempts=3, base_seconds=0.01, max_seconds=0.05)
GPS = {"latitude": 52.52, "longitude": 13.405}


def client(
    url: str, path: Path, *, max_batch: int = 500, queue_max_events: int = 1000
) -> LoomClient:
    return LoomClient(
        url, "loom_token", device_id="phone-1", queue_path=path, retry=FAST,
        max_batch=max_batch, queue_max_events=queue_max_events,
    )  # fmt: skip


def test_queued_events_survive_a_restart_and_go_out_in_order(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    with client("http://127.0.0.1:9", path) as loom:
        ids = [loom.enqueue("device.sensor.gps.raw", {**GPS, "n": n}) for n in range(5)]
    with EventQueue(path) as reopened:
        assert [q.id for q in reopened.peek(10)] == ids
    with running() as ingest, client(ingest.url, path, max_batch=2) as loom:
        flushed = loom.flush()
        assert (flushed.sent, len(loom.queue)) == (5, 0)
    assert [e["id"] for e in ingest.events()] == ids
    assert [e["data"]["n"] for e in ingest.events()] == list(range(5))
    assert [len(r.json()) for r in ingest.requests] == [2, 2, 1]
    assert ingest.events()[0]["data"]["device_id"] == "phone-1"


def test_offline_send_is_queued_then_flushed_when_ingest_is_back(tmp_path: Path) -> None:
    port, path = closed_port(), tmp_path / "queue.db"
    with client(f"http://127.0.0.1:{port}", path) as loom:
        result = loom.send("device.sensor.gps.raw", GPS, queue=True)
        assert (result.queued, result.accepted, len(loom.queue)) == (True, False, 1)
    with running(port) as ingest, client(ingest.url, path) as loom:
        later = loom.send("device.sensor.gps.raw", {**GPS, "n": 2}, queue=True)
        assert later.accepted
        assert not later.queued
        assert len(loom.queue) == 0
    assert [e["id"] for e in ingest.events()] == [result.id, later.id]


def test_nothing_is_deleted_without_a_2xx(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    with running() as ingest, client(ingest.url, path) as loom:
        loom.enqueue("device.sensor.gps.raw", GPS)
        for _ in range(FAST.attempts):
            ingest.answer(503, problem(503, "Kafka unavailable"), {"Retry-After": "0"})
        with pytest.raises(Unavailable, match="Kafka unavailable"):
            loom.flush()
        assert len(loom.queue) == 1
        assert loom.flush().sent == 1
        assert len(loom.queue) == 0
    first, *_, last = ingest.events()
    assert first["id"] == last["id"]


def test_refused_events_leave_the_queue_for_its_rejected_list(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    with running() as ingest, client(ingest.url, path) as loom:
        good = loom.enqueue("device.sensor.gps.raw", GPS)
        bad = loom.enqueue("device.sensor.gps.raw", {**GPS, "latitude": 99})
        after = loom.enqueue("device.sensor.gps.raw", GPS)
        flushed = loom.flush()
        assert flushed.sent == 2
        assert [(r.id, r.status) for r in flushed.rejected] == [(bad, 422)]
        assert len(loom.queue) == 0
        (kept,) = loom.queue.rejected()
        assert kept["event"]["id"] == bad
        assert kept["problem"]["errors"][0]["pointer"] == "/latitude"
    assert [e["id"] for e in ingest.events()] == [good, bad, after]


def test_an_event_too_large_for_ingest_is_refused_alone_and_the_queue_goes_on(
    tmp_path: Path,
) -> None:
    path = tmp_path / "queue.db"
    with running() as ingest, client(ingest.url, path) as loom:
        ingest.max_request_bytes = 20_000
        big = loom.enqueue("device.sensor.gps.raw", {**GPS, "note": "x" * 30_000})
        small = [loom.enqueue("device.sensor.gps.raw", {**GPS, "n": n}) for n in range(3)]
        flushed = loom.flush()
        assert flushed.sent == 3
        assert [(r.id, r.status, r.accepted) for r in flushed.rejected] == [(big, 413, False)]
        assert "over the limit of 20000 bytes" in (flushed.rejected[0].detail or "")
        assert len(loom.queue) == 0
        (kept,) = loom.queue.rejected()
        assert (kept["event"]["id"], kept["status"]) == (big, 413)
        later = loom.enqueue("device.sensor.gps.raw", GPS)
        assert loom.flush().sent == 1  # nothing is left at the head to block it
    taken = [e["id"] for r in ingest.requests if len(r.body) <= 20_000 for e in r.json()]
    assert taken == [*small, later]  # each once, in order


def test_a_batch_refused_whole_is_halved_until_the_bad_event_is_alone(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    with running() as ingest, client(ingest.url, path) as loom:
        ids = [loom.enqueue("device.sensor.gps.raw", {**GPS, "n": n}) for n in range(8)]
        ingest.answer(400, problem(400, "the batch is not valid JSON"))  # all 8
        ingest.answer(400, problem(400, "the batch is not valid JSON"))  # the first 4
        ingest.answer(400, problem(400, "the batch is not valid JSON"))  # the first 2
        ingest.answer(400, problem(400, "not valid: event 0"))  # event 0 alone
        flushed = loom.flush()
        assert flushed.sent == 7
        assert [(r.id, r.status, r.detail) for r in flushed.rejected] == [
            (ids[0], 400, "not valid: event 0")
        ]
        assert len(loom.queue) == 0
    sizes = [len(r.json()) for r in ingest.requests]
    assert sizes == [8, 4, 2, 1, 1, 2, 4]
    assert [e["id"] for e in ingest.events()][-7:] == ids[1:]  # in order


def test_a_full_queue_refuses_with_a_clear_error_and_takes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    with client("http://127.0.0.1:9", path, queue_max_events=3) as loom:
        loom.enqueue_events([{"type": "device.sensor.gps.raw", "data": GPS}] * 2)
        with pytest.raises(QueueFull, match=r"holds 2 events and takes at most 3; 2 more"):
            loom.enqueue_events([{"type": "device.sensor.gps.raw", "data": GPS}] * 2)
        assert len(loom.queue) == 2
        loom.enqueue("device.sensor.gps.raw", GPS)
        with pytest.raises(QueueFull):
            loom.send("device.sensor.gps.raw", GPS, queue=True)
        assert len(loom.queue) == 3


def test_the_id_is_fixed_when_queued(tmp_path: Path) -> None:
    with client("http://127.0.0.1:9", tmp_path / "q.db") as loom:
        event_id = loom.enqueue("device.sensor.gps.raw", GPS, id="fix-1")
        (queued,) = loom.queue.peek(1)
    assert event_id == queued.id == queued.event["id"] == "fix-1"


@pytest.mark.skipif(sys.platform in ("darwin", "win32"), reason="XDG cache dir")
def test_default_path_is_in_the_user_cache_per_url_and_device(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path = default_queue_path("http://ingest:8000", "phone-1")
    assert path.parent == tmp_path / "loom"
    assert path.name.startswith("queue-")
    assert path.suffix == ".db"
    assert path == default_queue_path("http://ingest:8000/", "phone-1")
    assert path != default_queue_path("http://other:8000", "phone-1")
    assert path != default_queue_path("http://ingest:8000", "phone-2")
    with LoomClient("http://ingest:8000", "loom_token", device_id="phone-1") as loom:
        loom.enqueue("device.sensor.gps.raw", GPS)
    assert path.exists()
