"""The store function on its two transports: Kafka through the local runner, and HTTP
as Knative delivers it; and a PostgreSQL crash in the middle of a write load."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from confluent_kafka import Producer

from functions.store.handler import handle as store
from loom.catalog import DEAD_LETTER_TYPE, Catalog
from loom.events import to_http_binary, to_kafka
from loom.kafka import create_topics, producer_config
from loom.runtime.event import Event
from loom.runtime.router import FunctionRunner
from loom.services import LocalServices
from loom.store.settings import StoreSettings
from tests.integration.ingest_helpers import consume_all, data_of, wait_for
from tests.integration.store_helpers import count, fresh_database, gps, heartrate, store_settings

TYPES = ["device.sensor.gps.raw", "device.health.heartrate.raw", DEAD_LETTER_TYPE]


def kafka_setup(
    services: LocalServices, catalog: Catalog, url: str, tmp: Path
) -> tuple[StoreSettings, Producer]:
    settings = store_settings(services, url, tmp, kafka_topic_prefix=f"st{uuid.uuid4().hex[:8]}")
    create_topics(catalog, settings, [catalog[t] for t in TYPES])
    return settings, Producer(producer_config(settings))


def produce(producer: Producer, settings: StoreSettings, catalog: Catalog, events: list[Event]):
    for event in events:
        record = to_kafka(event.to_cloudevent())
        topic = catalog[event.type].topic(settings.kafka_topic_prefix)
        producer.produce(topic, record.value, record.key, headers=list(record.headers.items()))
    assert producer.flush(30) == 0


def run_store(runner: FunctionRunner) -> threading.Thread:
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    return thread


def test_the_runner_stores_kafka_events_once_and_dead_letters_poison(
    services: LocalServices, catalog: Catalog, tmp_path: Path
) -> None:
    url = fresh_database(services)
    settings, producer = kafka_setup(services, catalog, url, tmp_path)
    poison = gps(9999)
    poison.data["note"] = "\u0000"  # the database refuses it; nothing else may be lost
    events = [gps(n) for n in range(300)] + [heartrate(n) for n in range(100)]
    produce(producer, settings, catalog, [*events[:200], poison, *events[200:]])
    produce(producer, settings, catalog, events[:50])  # redelivered: stored once

    runner = FunctionRunner(store.spec, catalog, settings)
    thread = run_store(runner)
    try:
        # every event, the poison, the redeliveries, and the dead letter itself (a stored
        # type, which the database refuses too: it stays in its topic, not dead-lettered again)
        wait_for("every delivery", lambda: runner.handled == len(events) + 1 + 50 + 1, timeout=90)
    finally:
        runner.stop_event.set()
        thread.join(60)
    assert count(url, "device_sensor_gps_raw") == 300
    assert count(url, "device_health_heartrate_raw") == 100
    assert runner.dead_lettered == 1
    dead = consume_all(settings, catalog[DEAD_LETTER_TYPE].topic(settings.kafka_topic_prefix))
    assert len(dead) == 1
    letter = data_of(dead[0])
    assert letter["function"] == "store"
    assert letter["kind"] == "poison"
    assert "refused" in letter["reason"]
    assert letter["event"]["id"] == poison.id

    # Offsets were committed after the database commit: a new runner finds nothing to do.
    again = FunctionRunner(store.spec, catalog, settings)
    thread = run_store(again)
    time.sleep(5)
    again.stop_event.set()
    thread.join(60)
    assert again.handled == 0


def test_every_event_delivered_is_stored_once_across_a_postgres_crash(
    services: LocalServices, catalog: Catalog, tmp_path: Path
) -> None:
    url = fresh_database(services)
    settings, producer = kafka_setup(services, catalog, url, tmp_path)
    total = 3000
    events = [gps(n, device=f"phone-{n % 7}") for n in range(total)]

    def trickle() -> None:  # a steady load before, during and after the crash
        for start in range(0, total, 50):
            produce(producer, settings, catalog, events[start : start + 50])
            time.sleep(0.1)

    runner = FunctionRunner(store.spec, catalog, settings, backoff_seconds=0.1)
    thread = run_store(runner)
    loader = threading.Thread(target=trickle, daemon=True)
    loader.start()
    try:
        wait_for("the first rows", lambda: count(url, "device_sensor_gps_raw") > 200, timeout=90)
        stored_before_the_crash = count(url, "device_sensor_gps_raw")
        services.postgres.kill()  # SIGQUIT: a crash, WAL replay on the next start
        time.sleep(11)  # longer than the store waits for a connection (10 s): writes fail
        services.postgres.start()
        loader.join(120)
        wait_for("every row", lambda: count(url, "device_sensor_gps_raw") >= total, timeout=120)
    finally:
        runner.stop_event.set()
        thread.join(60)
    with psycopg.connect(url) as conn:
        rows, distinct = conn.execute(
            "SELECT count(*), count(DISTINCT (source, id)) FROM device_sensor_gps_raw"
        ).fetchone() or (0, 0)
    assert (rows, distinct) == (total, total)
    assert stored_before_the_crash < total  # the crash came in the middle of the load
    assert runner.unavailable > 0  # writes failed while it was down, and were tried again
    assert runner.dead_lettered == 0


@pytest.fixture
def served_store(services: LocalServices, catalog: Catalog, tmp_path: Path):
    import uvicorn

    from loom.runtime.http import create_function_app
    from loom.services._process import free_port

    url = fresh_database(services)
    settings = store_settings(services, url, tmp_path)
    port = free_port()
    app = create_function_app(store.spec, catalog=catalog, settings=settings, sink="")
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    serving = threading.Thread(target=server.run, daemon=True)
    serving.start()
    wait_for("the store to serve", lambda: server.started, timeout=30)
    yield url, f"http://127.0.0.1:{port}/"
    server.should_exit = True
    serving.join(10)


async def test_concurrent_http_deliveries_are_group_committed(
    served_store: tuple[str, str], catalog: Catalog
) -> None:
    url, endpoint = served_store
    events = [gps(n, device=f"phone-{n % 5}") for n in range(640)]
    pending = list(events)
    statuses: list[int] = []

    async def deliver(client: httpx.AsyncClient) -> None:
        while pending:
            event = pending.pop()
            headers, body = to_http_binary(event.to_cloudevent())
            statuses.append(
                (await client.post(endpoint, headers=headers, content=body)).status_code
            )

    async with httpx.AsyncClient(timeout=30) as client:
        await asyncio.gather(*(deliver(client) for _ in range(64)))  # Knative: many in flight
        bad = gps(1)
        bad.data["latitude"] = 123  # breaks the schema
        headers, body = to_http_binary(bad.to_cloudevent())
        invalid = await client.post(endpoint, headers=headers, content=body)
        command = Event(type="device.command.app.close", data={}, source="/x")
        headers, body = to_http_binary(command.to_cloudevent())
        unstored = await client.post(endpoint, headers=headers, content=body)
        metrics = (await client.get(endpoint + "metrics")).text

    assert statuses == [202] * 640
    assert invalid.status_code == 422
    assert "latitude" in invalid.json()["detail"]
    assert unstored.status_code == 422
    assert "does not consume" in unstored.json()["detail"]
    with psycopg.connect(url) as conn:
        rows, commits = conn.execute(
            "SELECT count(*), count(DISTINCT stored_at) FROM device_sensor_gps_raw"
        ).fetchone() or (0, 0)
    assert rows == 640
    # Rows of one commit share its now(): fewer commits than rows means coalesced commits.
    # How many fewer depends on how busy the machine is (57 to 450 seen); bench/store.py
    # measures what it is worth.
    assert commits < 0.9 * rows
    assert 'loom_store_rows_total{outcome="inserted",table="device_sensor_gps_raw"}' in metrics
    assert "loom_store_commit_rows_bucket" in metrics


def test_an_event_posted_to_ingest_is_stored_with_when_it_was_received(
    services: LocalServices,
    catalog: Catalog,
    client: Any,
    device: dict[str, Any],
    ingest_settings: Any,
    tmp_path: Path,
) -> None:
    import json

    from tests.integration.ingest_helpers import binary_headers
    from tests.integration.ingest_helpers import gps as gps_data

    settings = store_settings(services, ingest_settings.database_url, tmp_path)
    headers = binary_headers(device["token"])
    sent = datetime.now(UTC)
    answer = client.post("/", content=json.dumps(gps_data(device["device_id"])), headers=headers)
    assert answer.status_code == 202, answer.text

    runner = FunctionRunner(store.spec, catalog, settings)
    thread = run_store(runner)
    where = f"id = '{headers['ce-id']}'"
    try:
        wait_for(
            "the row",
            lambda: count(settings.database_url, "device_sensor_gps_raw", where),
            timeout=90,
        )
    finally:
        runner.stop_event.set()
        thread.join(60)
    with psycopg.connect(settings.database_url) as conn:
        row = conn.execute(
            f"SELECT device_id, source, latitude, received_at, stored_at"
            f" FROM device_sensor_gps_raw WHERE {where}"
        ).fetchone()
    assert row is not None
    device_id, source, latitude, received_at, stored_at = row
    assert (device_id, source, latitude) == (device["device_id"], "/tests", 52.52)
    assert sent <= received_at <= stored_at
