"""Helpers for the ingest integration tests: a real app on real Kafka and PostgreSQL."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from confluent_kafka import Consumer, KafkaException, TopicPartition
from fastapi.testclient import TestClient

from functions.ingest import IngestSettings, create_app
from loom.kafka import consumer_config
from loom.services._process import free_port
from loom.settings import LoomSettings


def gps(device_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "device_id": device_id,
        "timestamp": "2026-11-25T08:15:30Z",
        "latitude": 52.52,
        "longitude": 13.405,
        "accuracy": 4.0,
        **extra,
    }


def binary_headers(
    token: str, type_: str = "device.sensor.gps.raw", **attrs: str
) -> dict[str, str]:
    headers = {
        "authorization": f"Bearer {token}",
        "content-type": "application/json",
        "ce-specversion": "1.0",
        "ce-id": str(uuid.uuid4()),
        "ce-source": "/tests",
        "ce-type": type_,
    }
    headers.update({f"ce-{k}": v for k, v in attrs.items()})
    return headers


def consume_all(settings: LoomSettings, topic: str, timeout: float = 20.0) -> list[Any]:
    """Every message now in ``topic`` (all partitions, from the start)."""
    consumer = Consumer(consumer_config(settings, group_id=f"t-{uuid.uuid4()}"))
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics[topic]
        partitions = [TopicPartition(topic, p) for p in metadata.partitions]
        ends = {}
        for tp in partitions:
            for attempt in range(50):  # a new partition's leader may still be loading
                try:
                    _, high = consumer.get_watermark_offsets(tp, timeout=10)
                    break
                except KafkaException:
                    if attempt == 49:
                        raise
                    time.sleep(0.2)
            ends[tp.partition] = high
        consumer.assign([TopicPartition(topic, p, 0) for p in ends])
        messages: list[Any] = []
        deadline = time.monotonic() + timeout
        done = {p for p, end in ends.items() if end == 0}
        while len(done) < len(ends) and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            messages.append(message)
            if message.offset() + 1 >= ends[message.partition()]:
                done.add(message.partition())
        return messages
    finally:
        consumer.close()


def ids_in(messages: list[Any]) -> set[str]:
    return {dict(m.headers() or [])["ce_id"].decode() for m in messages}


def data_of(message: Any) -> Any:
    return json.loads(message.value())


@contextmanager
def running_server(settings: IngestSettings) -> Iterator[str]:
    """The ingest app under real uvicorn on a free port, in a thread; yields its URL."""
    port = free_port()
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        loop="asyncio",
        lifespan="on",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def register(client: TestClient, admin: str, **body: Any) -> dict[str, Any]:
    body.setdefault("device_id", f"dev-{uuid.uuid4().hex[:10]}")
    body.setdefault("name", "test device")
    answer = client.post("/devices", json=body, headers={"authorization": f"Bearer {admin}"})
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def assert_problem(answer: Any, status: int, *phrases: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = answer.json()
    assert body["status"] == status
    for phrase in phrases:
        assert phrase in body["detail"], body
    return body


def post_structured(client: TestClient, token: str, event: Any, path: str = "/") -> Any:
    """POST one structured-mode CloudEvent with a device's token."""
    return client.post(
        path,
        content=json.dumps(event),
        headers={
            "authorization": f"Bearer {token}",
            "content-type": "application/cloudevents+json",
        },
    )


def post_batch(client: TestClient, token: str, events: Any, path: str = "/") -> Any:
    """POST a batched-mode body (any JSON, to test bad ones too) with a device's token."""
    return client.post(
        path,
        content=json.dumps(events),
        headers={
            "authorization": f"Bearer {token}",
            "content-type": "application/cloudevents-batch+json",
        },
    )


def wait_for(what: str, check: Callable[[], bool], timeout: float = 60) -> None:
    """Poll ``check`` until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)
