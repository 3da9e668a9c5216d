"""Events as the client builds them: complete, with the ids and defaults ingest needs."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from loom.client import ClientError, LoomClient
from loom.client.events import chunks, complete_event


def test_an_event_gets_id_source_time_and_the_data_defaults() -> None:
    with LoomClient("http://ingest", "loom_token", device_id="phone-1") as loom:
        event = loom.event("device.sensor.gps.raw", {"latitude": 1.0, "longitude": 2.0})
    assert event["specversion"] == "1.0"
    assert event["source"] == "/devices/phone-1"
    assert event["partitionkey"] == "phone-1"
    assert len(event["id"]) == 36
    assert event["data"]["device_id"] == "phone-1"
    assert event["data"]["timestamp"] == event["time"]
    assert event["time"].endswith("Z")


def test_the_time_comes_from_the_data_when_it_has_one() -> None:
    event = complete_event(
        {"type": "t", "data": {"timestamp": "2026-11-25T09:15:30+01:00"}}, device_id="d"
    )
    assert event["time"] == "2026-11-25T08:15:30Z"
    assert event["data"]["timestamp"] == "2026-11-25T09:15:30+01:00"


def test_given_attributes_are_kept() -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    event = complete_event(
        {"type": "t", "id": "x", "source": "/s", "time": when, "data": {"device_id": "other"}},
        device_id="d",
    )
    assert (event["id"], event["source"], event["time"]) == ("x", "/s", "2026-01-02T03:04:05Z")
    assert event["data"]["device_id"] == "other"  # ingest says whether that is allowed


def test_an_event_without_a_type_is_refused_here() -> None:
    with pytest.raises(ClientError, match="needs a 'type'"):
        complete_event({"data": {}})


def test_batches_are_cut_by_count_and_by_size() -> None:
    events = [{"type": "t", "data": "x" * 100} for _ in range(5)]
    assert list(chunks(events, 2, 10_000)) == [[0, 1], [2, 3], [4]]
    assert list(chunks(events, 10, 300)) == [[0, 1], [2, 3], [4]]
    assert list(chunks(events, 10, 10)) == [[0], [1], [2], [3], [4]]
