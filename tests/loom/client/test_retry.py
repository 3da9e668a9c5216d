"""Retries against a real local HTTP server: what is retried, how long it waits, what is not."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from loom.client import AsyncLoomClient, LoomClient, Rejected, RetryPolicy, Unavailable
from loom.client.retry import parse_retry_after
from tests.loom.client.fake_ingest import FakeIngest, closed_port, problem, running

FAST = RetryPolicy(attempts=4, base_seconds=0.01, max_seconds=0.05)
GPS = {"latitude": 52.52, "longitude": 13.405}


@pytest.fixture
def ingest() -> Iterator[FakeIngest]:
    with running() as fake:
        yield fake


def client_for(url: str, policy: RetryPolicy = FAST) -> LoomClient:
    return LoomClient(url, "loom_token", device_id="phone-1", retry=policy)


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_waited_out_and_the_same_event_sent_again(
    ingest: FakeIngest, status: int
) -> None:
    ingest.answer(status, problem(status, "busy", retry_after=1), {"Retry-After": "1"})
    with client_for(ingest.url) as loom:
        result = loom.send("device.sensor.gps.raw", GPS)
    first, second = ingest.requests
    assert second.at - first.at >= 1.0
    assert result.accepted
    assert result.status == 202
    assert first.json()["id"] == second.json()["id"] == result.id


@pytest.mark.parametrize("status", [408, 500, 502, 504])
def test_other_transient_answers_are_retried_with_backoff(ingest: FakeIngest, status: int) -> None:
    ingest.answer(status, problem(status, "try again"))
    ingest.answer(status, problem(status, "try again"))
    with client_for(ingest.url) as loom:
        assert loom.send("device.sensor.gps.raw", GPS).accepted
    assert len(ingest.requests) == 3


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 413, 422])
def test_the_callers_own_errors_are_never_retried(ingest: FakeIngest, status: int) -> None:
    errors = [{"pointer": "/latitude", "message": "too far north"}]
    ingest.answer(status, problem(status, f"refused with {status}", errors=errors))
    with client_for(ingest.url) as loom, pytest.raises(Rejected) as caught:
        loom.send("device.sensor.gps.raw", GPS, id="e-1")
    assert len(ingest.requests) == 1
    assert caught.value.status == status
    assert caught.value.detail == f"refused with {status}"
    assert caught.value.errors == errors
    assert caught.value.event_id == "e-1"
    assert "/latitude: too far north" in str(caught.value)


def test_a_schema_violation_names_the_pointer(ingest: FakeIngest) -> None:
    with client_for(ingest.url) as loom, pytest.raises(Rejected) as caught:
        loom.send("device.sensor.gps.raw", {**GPS, "latitude": 99})
    assert caught.value.status == 422
    assert caught.value.errors[0]["pointer"] == "/latitude"


def test_gives_up_after_the_last_attempt_when_nothing_listens() -> None:
    started = time.monotonic()
    with client_for(f"http://127.0.0.1:{closed_port()}") as loom, pytest.raises(Unavailable) as e:
        loom.send("device.sensor.gps.raw", GPS)
    assert e.value.attempts == FAST.attempts
    assert e.value.status is None
    assert "ConnectError" in str(e.value)
    assert time.monotonic() - started < 5


def test_keeps_answering_503_ends_in_unavailable_with_the_status(ingest: FakeIngest) -> None:
    for _ in range(FAST.attempts):
        ingest.answer(503, problem(503, "Kafka is down"), {"Retry-After": "0"})
    with client_for(ingest.url) as loom, pytest.raises(Unavailable) as caught:
        loom.send("device.sensor.gps.raw", GPS)
    assert caught.value.status == 503
    assert "Kafka is down" in str(caught.value)
    assert len(ingest.requests) == FAST.attempts


def test_a_retry_after_longer_than_allowed_is_not_waited_for(ingest: FakeIngest) -> None:
    ingest.answer(503, problem(503, "maintenance"), {"Retry-After": "3600"})
    started = time.monotonic()
    with client_for(ingest.url) as loom, pytest.raises(Unavailable) as caught:
        loom.send("device.sensor.gps.raw", GPS)
    assert caught.value.retry_after == 3600
    assert time.monotonic() - started < 2
    assert len(ingest.requests) == 1


def test_retry_after_as_an_http_date() -> None:
    soon = datetime.now(UTC) + timedelta(seconds=30)
    assert 28 <= (parse_retry_after(format_datetime(soon, usegmt=True)) or 0) <= 30
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after("soon") is None


def test_batch_reports_each_event_and_sends_only_retryable_ones_again(
    ingest: FakeIngest,
) -> None:
    busy = problem(503, "Kafka queue full", retry_after=0)
    ingest.answer(
        207,
        {"accepted": 1, "rejected": 2, "results": [
            {"index": 0, "id": "a", "status": 202, "accepted": True},
            {"index": 1, "id": "b", "status": 503, "accepted": False, "retryable": True,
             "problem": busy},
            {"index": 2, "id": "c", "status": 422, "accepted": False, "retryable": False,
             "problem": problem(422, "bad data", errors=[{"pointer": "/x", "message": "no"}])},
        ]},
    )  # fmt: skip
    events = [{"type": "device.sensor.gps.raw", "id": i, "data": GPS} for i in "abc"]
    with client_for(ingest.url) as loom:
        result = loom.send_batch(events)
    assert [r.accepted for r in result.results] == [True, True, False]
    assert [e["id"] for e in ingest.requests[1].json()] == ["b"]
    assert ingest.requests[0].headers["content-type"] == "application/cloudevents-batch+json"
    (refused,) = result.rejected
    assert (refused.id, refused.status, refused.detail) == ("c", 422, "bad data")
    assert refused.errors == [{"pointer": "/x", "message": "no"}]
    assert result.retried == 1


def test_a_large_batch_is_cut_in_order(ingest: FakeIngest) -> None:
    events = [{"type": "device.sensor.gps.raw", "data": {**GPS, "n": n}} for n in range(7)]
    with LoomClient(ingest.url, "loom_token", max_batch=3, retry=FAST) as loom:
        result = loom.send_batch(events)
    assert result.ok
    assert [len(r.json()) for r in ingest.requests] == [3, 3, 1]
    assert [e["data"]["n"] for e in ingest.events()] == list(range(7))


def test_a_batch_too_large_for_ingest_is_split_and_only_the_oversized_event_refused(
    ingest: FakeIngest,
) -> None:
    ingest.max_request_bytes = 4_000
    events = [{"type": "device.sensor.gps.raw", "id": f"e{n}", "data": {**GPS, "n": n}}
              for n in range(20)]  # fmt: skip
    events[13]["data"]["note"] = "x" * 5_000
    with client_for(ingest.url) as loom:
        result = loom.send_batch(events)
    assert [r.id for r in result.results] == [e["id"] for e in events]
    (refused,) = result.rejected
    assert (refused.id, refused.status, refused.retryable) == ("e13", 413, False)
    taken = [e["id"] for r in ingest.requests if len(r.body) <= 4_000 for e in r.json()]
    assert taken == [e["id"] for e in events if e["id"] != "e13"]  # each once, in order


async def test_the_async_client_retries_alike(ingest: FakeIngest) -> None:
    ingest.answer(429, problem(429, "slow down", retry_after=1), {"Retry-After": "1"})
    async with AsyncLoomClient(ingest.url, "loom_token", retry=FAST) as loom:
        result = await loom.send("device.sensor.gps.raw", GPS)
        with pytest.raises(Rejected):
            await loom.send("device.sensor.gps.raw", {**GPS, "latitude": 99})
    first, second, _ = ingest.requests
    assert second.at - first.at >= 1.0
    assert result.accepted
    assert first.headers["authorization"] == "Bearer loom_token"
