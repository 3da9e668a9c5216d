"""The local runner's router on a real broker: outputs, retries, dead letters, commits."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from loom.catalog import Catalog
from loom.events import to_kafka
from loom.kafka import create_topics, producer_config
from loom.runtime.context import Context
from loom.runtime.event import Event
from loom.runtime.registry import Registry, function
from loom.runtime.router import DEAD_LETTER_TYPE, FunctionRunner
from loom.services import KafkaServer, LocalServices
from loom.settings import LoomSettings
from tests.integration.ingest_helpers import consume_all, data_of, wait_for
from tests.loom.runtime.sample import power_echo

TYPES = [
    "device.state.power.raw",
    "device.state.power.enriched",
    "device.state.power.patterns",
    DEAD_LETTER_TYPE,
]


def power(level: float) -> Event:
    data = {
        "device_id": "phone-1",
        "timestamp": "2026-11-25T08:00:00Z",
        "battery_level": level,
        "is_charging": True,
    }
    return Event(
        type="device.state.power.raw", data=data, source="/devices/phone-1", device_id="phone-1"
    )


def isolated(
    services: LocalServices, catalog: Catalog, prefix: str
) -> tuple[LoomSettings, dict[str, str], Producer]:
    """Settings with a topic prefix of their own, the topics of TYPES created, a producer."""
    settings = services.settings(kafka_topic_prefix=f"{prefix}{uuid.uuid4().hex[:8]}")
    create_topics(catalog, settings, [catalog[t] for t in TYPES])
    topic = {t: catalog[t].topic(settings.kafka_topic_prefix) for t in TYPES}
    return settings, topic, Producer(producer_config(settings))


def produce(producer: Producer, topic: str, events: list[Event]) -> None:
    for event in events:
        record = to_kafka(event.to_cloudevent())
        producer.produce(topic, record.value, record.key, headers=list(record.headers.items()))


def test_router_delivers_retries_dead_letters_and_commits(
    services: LocalServices, catalog: Catalog
) -> None:
    settings, topic, producer = isolated(services, catalog, "rt")
    produce(
        producer, topic["device.state.power.raw"], [power(40), power(100), power(13), power(150)]
    )
    producer.produce(topic["device.state.power.raw"], b"not a cloudevent", b"phone-1")
    assert producer.flush(30) == 0

    runner = FunctionRunner(
        power_echo.spec, catalog, settings, max_attempts=3, backoff_seconds=0.05
    )
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    try:
        wait_for("dead letters", lambda: len(consume_all(settings, topic[DEAD_LETTER_TYPE])) == 3)
        enriched = consume_all(settings, topic["device.state.power.enriched"])
        assert sorted(data_of(m)["battery_level"] for m in enriched) == [40, 100]
        (pattern,) = consume_all(settings, topic["device.state.power.patterns"])
        assert data_of(pattern)["pattern"] == "charging_session"
        dead = [data_of(m) for m in consume_all(settings, topic[DEAD_LETTER_TYPE])]
        assert sorted((d["kind"], d["attempts"]) for d in dead) == [
            ("exhausted", 3),
            ("poison", 1),
            ("poison", 1),
        ]
        (exhausted,) = [d for d in dead if d["kind"] == "exhausted"]
        assert "unlucky battery level" in exhausted["reason"]
        assert exhausted["data"]["battery_level"] == 13
        reasons = sorted(
            data_of(m)["reason"] for m in consume_all(settings, topic[DEAD_LETTER_TYPE])
        )
        assert any("battery_level" in r and "schema" in r for r in reasons)
        assert any("not a binary-mode CloudEvent" in r for r in reasons)
        assert enriched[0].key() == b"phone-1"
    finally:
        runner.stop_event.set()
        thread.join(30)
    assert runner.handled == 5

    # committed: a new runner of the same group has nothing left to do
    again = FunctionRunner(power_echo.spec, catalog, settings)
    thread = threading.Thread(target=again.run, daemon=True)
    thread.start()
    time.sleep(6)
    again.stop_event.set()
    thread.join(30)
    assert again.handled == 0
    assert len(consume_all(settings, topic["device.state.power.enriched"])) == 2


def test_router_delivers_over_http_to_a_served_function(
    services: LocalServices, catalog: Catalog
) -> None:
    import uvicorn

    from loom.runtime.http import create_function_app
    from loom.services._process import free_port

    settings, topic, producer = isolated(services, catalog, "rh")
    port = free_port()
    app = create_function_app(power_echo.spec, catalog=catalog, settings=settings, sink="")
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    serving = threading.Thread(target=server.run, daemon=True)
    serving.start()
    produce(
        producer, topic["device.state.power.raw"], [power(40), power(55), power(150), power(13)]
    )
    assert producer.flush(30) == 0
    runner = FunctionRunner(
        power_echo.spec,
        catalog,
        settings,
        max_attempts=2,
        backoff_seconds=0.05,
        url=f"http://127.0.0.1:{port}/",
    )
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    try:
        wait_for("dead letters", lambda: len(consume_all(settings, topic[DEAD_LETTER_TYPE])) == 2)
        enriched = consume_all(settings, topic["device.state.power.enriched"])
        assert sorted(data_of(m)["battery_level"] for m in enriched) == [40, 55]
        assert {dict(m.headers())["ce_source"] for m in enriched} == {b"/loom/functions/power-echo"}
        dead = sorted(
            (data_of(m)["kind"], data_of(m)["attempts"])
            for m in consume_all(settings, topic[DEAD_LETTER_TYPE])
        )
        assert dead == [("exhausted", 2), ("poison", 1)]
    finally:
        runner.stop_event.set()
        thread.join(30)
        server.should_exit = True
        serving.join(10)


def test_outputs_kafka_refuses_are_sent_again_without_handling_the_events_again(
    services: LocalServices, catalog: Catalog, tmp_path: Path
) -> None:
    kafka = KafkaServer(tmp_path / "kafka").start()  # a broker of its own, to take down
    try:
        settings = services.settings(kafka_bootstrap_servers=kafka.bootstrap_servers)
        raw, enriched = (catalog[t] for t in ("device.state.power.raw",
                                              "device.state.power.enriched"))  # fmt: skip
        create_topics(catalog, settings, [raw, enriched, catalog[DEAD_LETTER_TYPE]])
        producer = Producer(producer_config(settings))
        produce(producer, raw.topic(), [power(40), power(55)])
        assert producer.flush(30) == 0
        calls: list[str] = []

        @function(consumes=[raw.type], produces=[enriched.type], name="counting-echo",
                  registry=Registry())  # fmt: skip
        async def counting_echo(event: Event, ctx: Context) -> Event:
            if not calls:
                kafka.kill()  # the outputs of this batch cannot be delivered now
            calls.append(event.id)
            return await power_echo(event, ctx)

        runner = FunctionRunner(counting_echo.spec, catalog, settings, backoff_seconds=0.5)
        thread = threading.Thread(target=runner.run, daemon=True)
        thread.start()
        try:
            # Kafka refuses the outputs once they time out; the runner keeps them.
            wait_for("a refused delivery", lambda: runner.undelivered > 0, timeout=120)
            kafka.start()
            ids: set[Any] = set()

            def arrived() -> bool:
                found = consume_all(settings, enriched.topic())
                ids.update(dict(m.headers())["ce_id"] for m in found)
                return len(ids) == 2

            wait_for("both outputs", arrived, timeout=180)
        finally:
            runner.stop_event.set()
            thread.join(60)
        assert len(calls) == 2  # each event handled once, however often its output was sent
    finally:
        kafka.stop()
