"""Replay on a real broker: a day of events, two hours of them re-delivered."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from confluent_kafka import Producer

from loom.catalog import Catalog
from loom.events import to_kafka
from loom.kafka import create_topics, producer_config
from loom.runtime.event import Event
from loom.runtime.replay import replay
from loom.services import LocalServices
from tests.integration.ingest_helpers import consume_all, data_of
from tests.loom.runtime.sample import power_echo

DAY = datetime(2026, 11, 24, tzinfo=UTC)


def test_replay_two_hours_of_a_day_to_a_function_and_a_topic(
    services: LocalServices, catalog: Catalog
) -> None:
    settings = services.settings(kafka_topic_prefix=f"rp{uuid.uuid4().hex[:8]}")
    types = ["device.state.power.raw", "device.state.power.enriched", "device.state.power.patterns"]
    create_topics(catalog, settings, [catalog[t] for t in types])
    raw, enriched = (catalog[t].topic(settings.kafka_topic_prefix) for t in types[:2])
    producer = Producer(producer_config(settings))
    for minute in range(0, 24 * 60, 10):  # a day, every 10 minutes: 144 events
        when = DAY + timedelta(minutes=minute)
        event = Event(type=types[0], source="/devices/phone-1", device_id="phone-1",
                      id=f"m{minute}", time=when,
                      data={"device_id": "phone-1", "timestamp": when.isoformat(),
                            "battery_level": minute % 90, "is_charging": False})  # fmt: skip
        record = to_kafka(event.to_cloudevent())
        producer.produce(raw, record.value, record.key, headers=list(record.headers.items()),
                         timestamp=int(when.timestamp() * 1000))  # fmt: skip
    assert producer.flush(30) == 0

    seen: list[tuple[int, int]] = []
    start, end = DAY + timedelta(hours=10), DAY + timedelta(hours=12)
    result = replay(settings, catalog, topic=raw, start=start, end=end,
                    to_function=power_echo.spec, rate=500,
                    progress=lambda done, total: seen.append((done, total)))  # fmt: skip
    assert (result.delivered, result.failed) == (12, 0)
    assert seen[-1] == (12, 12)
    made = consume_all(settings, enriched)
    stamps = sorted(data_of(m)["timestamp"] for m in made)
    assert len(made) == 12
    assert stamps[0] == (DAY + timedelta(hours=10)).isoformat()
    assert stamps[-1] == (DAY + timedelta(hours=11, minutes=50)).isoformat()

    # replaying the same range again makes the same ids: idempotent downstream
    replay(settings, catalog, topic=raw, start=start, end=end, to_function=power_echo.spec)
    ids = [dict(m.headers())["ce_id"] for m in consume_all(settings, enriched)]
    assert len(ids) == 24
    assert len(set(ids)) == 12

    copy = f"{raw}.copy"
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
    for future in admin.create_topics([NewTopic(copy, 1, 1)]).values():
        future.result(30)
    copied = replay(settings, catalog, topic=raw, start=DAY, end=DAY + timedelta(hours=1),
                    to_topic=copy)  # fmt: skip
    assert copied.delivered == 6
    assert len(consume_all(settings, copy)) == 6
