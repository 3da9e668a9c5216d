"""CloudEvents on Kafka: binary content mode, key = device id."""

from __future__ import annotations

from loom.events import from_kafka, make_event, to_kafka


def test_binary_mode_headers_key_and_value() -> None:
    event = make_event(
        "device.health.heartrate.raw",
        {"bpm": 61},
        source="/d/watch",
        device_id="watch-1",
        id_="evt-1",
    )
    record = to_kafka(event)
    assert record.key == "watch-1"
    assert record.headers["ce_id"] == b"evt-1"
    assert record.headers["ce_type"] == b"device.health.heartrate.raw"
    assert record.headers["ce_specversion"] == b"1.0"
    assert record.headers["content-type"] == b"application/json"
    assert record.value == b'{"bpm": 61}' or record.value == b'{"bpm":61}'
    back = from_kafka(list(record.headers.items()), record.key, record.value)
    assert back.get_attributes() == event.get_attributes()
    assert back.get_data() == {"bpm": 61}


def test_event_without_device_has_no_key() -> None:
    event = make_event("task.url.ingest", {"url": "https://example.org"}, source="/scraper")
    assert to_kafka(event).key is None
