"""Replay: re-deliver a time range of a topic through the graph, at a bounded rate.

Offsets come from the broker's time index (``offsets_for_times``), so ``--from`` and
``--to`` are the events' Kafka timestamps (when ingest wrote them). Nothing is
committed: a replay reads with a throw-away consumer group. Targets:

- a function (in-process, its outputs produced to their topics: what the router does),
- a URL (binary-mode CloudEvents over HTTP, e.g. a ``loom serve`` function or a Broker),
- another topic (records copied as they are).

Downstream writes are idempotent on (source, id), and derived ids are deterministic,
so replaying the same range twice changes nothing.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from loom.catalog import Catalog
from loom.errors import LoomError
from loom.events import from_kafka, to_http_binary
from loom.kafka import consumer_config, producer_config
from loom.runtime.event import Event
from loom.runtime.invoke import invoke
from loom.runtime.registry import FunctionSpec
from loom.runtime.router import produce_event
from loom.settings import LoomSettings

__all__ = ["ReplayResult", "plan", "replay"]


@dataclass
class ReplayResult:
    delivered: int = 0
    failed: int = 0
    seconds: float = 0.0


def plan(
    consumer: Consumer, topic: str, start: datetime, end: datetime
) -> list[tuple[int, int, int]]:
    """(partition, first offset, end offset) of the records with start ≤ timestamp < end."""
    metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
    if metadata is None or metadata.error is not None:
        raise LoomError(f"no topic {topic!r} on the broker")
    partitions = sorted(metadata.partitions)
    ms = [int(start.timestamp() * 1000), int(end.timestamp() * 1000)]
    firsts = consumer.offsets_for_times([TopicPartition(topic, p, ms[0]) for p in partitions], 10)
    lasts = consumer.offsets_for_times([TopicPartition(topic, p, ms[1]) for p in partitions], 10)
    ranges = []
    for first, last in zip(firsts, lasts, strict=True):
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, first.partition), 10)
        begin = first.offset if first.offset >= 0 else high
        stop = last.offset if last.offset >= 0 else high
        if stop > begin:
            ranges.append((first.partition, begin, stop))
    return ranges


def replay(
    settings: LoomSettings,
    catalog: Catalog,
    *,
    topic: str,
    start: datetime,
    end: datetime,
    to_function: FunctionSpec | None = None,
    to_url: str | None = None,
    to_topic: str | None = None,
    rate: float | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ReplayResult:
    """Re-deliver ``topic``'s records from ``start`` to ``end`` to exactly one target."""
    if sum(t is not None for t in (to_function, to_url, to_topic)) != 1:
        raise LoomError("name exactly one target: a function, a URL or a topic")
    group = f"loom-replay-{uuid.uuid4()}"
    consumer = Consumer(consumer_config(settings, group, "loom-replay"))
    producer = Producer(producer_config(settings, "loom-replay"))
    result, started = ReplayResult(), time.monotonic()
    loop = asyncio.new_event_loop()
    client: Any = None
    try:
        ranges = plan(consumer, topic, start, end)
        total = sum(stop - begin for _, begin, stop in ranges)
        if progress:
            progress(0, total)
        if not ranges:
            return result
        consumer.assign([TopicPartition(topic, p, begin) for p, begin, _ in ranges])
        stops = {p: stop for p, _, stop in ranges}
        done: set[int] = set()
        if to_url is not None:
            import httpx

            client = httpx.Client(timeout=30)
        while len(done) < len(ranges):
            message = consumer.poll(1.0)
            if message is None:
                continue
            partition = int(message.partition() or 0)
            if message.error() or partition in done:
                continue
            if int(message.offset() or 0) >= stops[partition]:
                done.add(partition)
                continue
            ok = _deliver(message, settings, catalog, producer, loop, client,
                          to_function, to_url, to_topic)  # fmt: skip
            result.delivered += ok
            result.failed += not ok
            if int(message.offset() or 0) + 1 >= stops[partition]:
                done.add(partition)
            if progress:
                progress(result.delivered + result.failed, total)
            if rate:
                behind = (result.delivered + result.failed) / rate - (time.monotonic() - started)
                if behind > 0:
                    time.sleep(behind)
        producer.flush(60)
    finally:
        consumer.close()
        loop.close()
        if client is not None:
            client.close()
        result.seconds = time.monotonic() - started
    return result


def _deliver(message: Any, settings: LoomSettings, catalog: Catalog, producer: Producer,
             loop: asyncio.AbstractEventLoop, client: Any, to_function: FunctionSpec | None,
             to_url: str | None, to_topic: str | None) -> bool:  # fmt: skip
    if to_topic is not None:
        producer.produce(to_topic, message.value(), message.key(), headers=message.headers())
        producer.poll(0)
        return True
    event = Event.from_cloudevent(from_kafka(message.headers(), message.key(), message.value()))
    if to_url is not None:
        headers, body = to_http_binary(event.to_cloudevent(catalog[event.type].schema_id))
        answer = client.post(to_url, headers=headers, content=body)
        return bool(answer.status_code < 300)
    assert to_function is not None
    try:
        made = loop.run_until_complete(
            invoke(to_function, event, catalog=catalog, settings=settings)
        )
    except LoomError:
        return False
    for out in made:
        produce_event(producer, catalog, settings.kafka_topic_prefix, out)
    return True
