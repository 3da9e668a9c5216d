"""The local runner's router: what KafkaSource + Broker + Triggers do in the cluster.

One consumer group per function (``loom.<function>``) over the topics of the types
it consumes. Each event goes to the handler in-process; what it makes is produced to
the topics of those types (binary mode, ``acks=all``); a failure is retried with
exponential backoff, then dead-lettered; poison is dead-lettered at once; while a
dependency is down (:class:`Unavailable`) it is retried for as long as it takes.
Offsets are committed only once every output (and dead letter) of a batch is
acknowledged, so a crash repeats work but never loses it, and deterministic
derived ids make the repeats harmless downstream.

The events of a batch are handled concurrently, as Knative delivers many at once
(the store turns them into one group commit); an ``ordered`` function gets the
events of one partition one after another, so one device's events stay in order.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from loom.catalog import DEAD_LETTER_TYPE, Catalog
from loom.cehttp import parse_binary as from_http
from loom.events import from_kafka, to_http_binary, to_kafka
from loom.kafka import consumer_config, producer_config
from loom.logging import get_logger
from loom.runtime.event import Event
from loom.runtime.invoke import BadOutput, HandlerFailed, PoisonEvent, Unavailable, invoke
from loom.runtime.model_client import open_model_clients
from loom.runtime.registry import FunctionSpec, Registry
from loom.settings import LoomSettings

__all__ = ["DEAD_LETTER_TYPE", "FunctionRunner", "Router", "produce_event"]

log = get_logger(__name__)


DEFAULT_CONCURRENCY = 100  # events of one batch in flight at once, unless the function says


class _Abandoned(Exception):
    """Stopping while a dependency is down: the batch is left uncommitted, for next time."""


@dataclass
class FunctionRunner:
    """Kafka → one function → Kafka, for the local runner (and its tests)."""

    spec: FunctionSpec
    catalog: Catalog
    settings: LoomSettings
    models: Mapping[str, Any] = field(default_factory=dict)
    max_attempts: int = 5
    backoff_seconds: float = 0.2
    batch: int = 500
    url: str | None = None
    handled: int = 0
    dead_lettered: int = 0
    unavailable: int = 0  # attempts that found a dependency down (and were tried again)
    undelivered: int = 0  # outputs Kafka refused (and that were sent again)
    stop_event: threading.Event = field(default_factory=threading.Event)
    _client: Any = field(default=None, repr=False)
    _state: Any = field(default=None, repr=False)

    async def _call(self, event: Event) -> list[Event]:
        """The handler in-process, or the function's ``loom serve`` process over HTTP."""
        if self.url is None:
            return await invoke(self.spec, event, catalog=self.catalog, settings=self.settings,
                                models=self.models, state=self._state)  # fmt: skip
        import httpx

        self._client = self._client or httpx.AsyncClient(timeout=60)
        headers, body = to_http_binary(event.to_cloudevent(self.catalog[event.type].schema_id))
        try:
            answer = await self._client.post(self.url, headers=headers, content=body)
        except httpx.HTTPError as exc:
            raise HandlerFailed(f"{self.url} unreachable: {exc}") from exc
        if answer.status_code in (400, 404, 409, 413, 415, 422):
            raise PoisonEvent(f"{self.url} refused the event: {answer.text[:300]}")
        if answer.status_code == 503 and '/unavailable"' in answer.text[:200]:
            raise Unavailable(f"{self.url}: {answer.text[:300]}")
        if answer.status_code >= 300:
            raise HandlerFailed(f"{self.url} answered {answer.status_code}: {answer.text[:300]}")
        if answer.status_code == 202 or "ce-type" not in answer.headers:
            return []
        reply = from_http(dict(answer.headers), answer.content)
        return [Event.from_cloudevent(reply)]

    @property
    def group_id(self) -> str:
        prefix = self.settings.kafka_topic_prefix
        return f"{prefix + '.' if prefix else ''}loom.{self.spec.name}"

    def topic_of(self, type_: str) -> str:
        return self.catalog[type_].topic(self.settings.kafka_topic_prefix)

    # ── one message ────────────────────────────────────────────────────────
    async def _handle(self, message: Message) -> list[Event]:
        try:
            event = Event.from_cloudevent(
                from_kafka(message.headers(), message.key(), message.value())
            )
        except Exception as exc:  # noqa: BLE001 - anything undecodable is poison
            return self._dead_letter(
                None, message, f"not a binary-mode CloudEvent: {exc}", "poison", 1
            )
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._call(event)
            except PoisonEvent as exc:
                return self._dead_letter(event, message, str(exc), "poison", attempt)
            except Unavailable as exc:
                self.unavailable += 1
                if self.stop_event.is_set():
                    raise _Abandoned(str(exc)) from exc
                delay = min(5.0, self.backoff_seconds * 2 ** min(attempt - 1, 8))
                log.warning("router.unavailable", function=self.spec.name, event_id=event.id,
                            attempt=attempt, delay=delay, error=str(exc))  # fmt: skip
            except (HandlerFailed, BadOutput) as exc:
                if attempt >= self.max_attempts or self.stop_event.is_set():
                    return self._dead_letter(event, message, str(exc), "exhausted", attempt)
                delay = min(30.0, self.backoff_seconds * 2 ** (attempt - 1))
                log.warning("router.retry", function=self.spec.name, event_id=event.id,
                            attempt=attempt, delay=delay, error=str(exc))  # fmt: skip
            await asyncio.sleep(delay)

    async def _handle_all(self, messages: list[Message]) -> list[list[Event]]:
        """Every message of a batch, concurrently (at most the function's concurrency at
        once); one partition at a time when ordered. If one is abandoned, so are all."""
        made: list[list[Event]] = [[] for _ in messages]
        limit = asyncio.Semaphore(self.spec.concurrency or DEFAULT_CONCURRENCY)

        async def one(index: int) -> None:
            async with limit:
                made[index] = await self._handle(messages[index])

        async def lane(indexes: list[int]) -> None:
            for index in indexes:
                await one(index)

        if self.spec.ordered:
            lanes: dict[tuple[str, int], list[int]] = {}
            for index, message in enumerate(messages):
                lanes.setdefault(_position(message)[0], []).append(index)
            work = [lane(indexes) for indexes in lanes.values()]
        else:
            work = [one(index) for index in range(len(messages))]
        try:
            async with asyncio.TaskGroup() as group:
                for job in work:
                    group.create_task(job)
        except BaseExceptionGroup as failed:  # the others were cancelled by the group
            abandoned = failed.subgroup(_Abandoned)
            first = (abandoned or failed).exceptions[0]
            raise first from None
        return made

    def _dead_letter(
        self, event: Event | None, message: Message, reason: str, kind: str, attempts: int
    ) -> list[Event]:
        (topic, partition), offset = _position(message)
        where = {"topic": topic, "partition": partition, "offset": offset}
        if event is not None and event.type == DEAD_LETTER_TYPE:
            # A dead letter no function can handle stays where it is, in the dead-letter
            # topic; dead-lettering it again would go round forever.
            log.error("router.dead_letter_unhandled", function=self.spec.name, kind=kind,
                      reason=reason, **where)  # fmt: skip
            return []
        self.dead_lettered += 1
        if event is not None:
            attrs = {"id": event.id, "source": event.source, "type": event.type,
                     "time": event.time.isoformat()}  # fmt: skip
        else:
            attrs = {"id": f"{topic}/{partition}/{offset}", "source": "kafka",
                     "type": "(undecodable)"}  # fmt: skip
        data = event.data if event is not None else _text(message.value())
        log.error("router.dead_letter", function=self.spec.name, kind=kind, reason=reason, **where)
        letter = Event(
            type=DEAD_LETTER_TYPE,
            data={"device_id": event.device_id if event else None,
                  "timestamp": datetime.now(UTC).isoformat(), "function": self.spec.name,
                  "reason": reason, "kind": kind, "attempts": attempts, "event": attrs,
                  "data": data, **where},
            source=f"/loom/functions/{self.spec.name}",
            device_id=event.device_id if event else None,
        )  # fmt: skip
        return [letter]

    # ── the loop ───────────────────────────────────────────────────────────
    def run(self) -> None:
        """Consume until ``stop_event`` is set; then finish the batch, commit, close."""
        consumer = Consumer(consumer_config(self.settings, self.group_id, f"loom-{self.spec.name}"))
        producer = Producer(producer_config(self.settings, f"loom-{self.spec.name}"))
        consumer.subscribe([self.topic_of(t) for t in self.spec.consumes])
        loop = asyncio.new_event_loop()
        resources = AsyncExitStack()
        try:
            if self.spec.models and not self.models and self.url is None:
                self.models = loop.run_until_complete(resources.enter_async_context(
                    open_model_clients(self.spec.models, self.settings)))  # fmt: skip
            if self.spec.lifespan is not None and self.url is None:
                self._state = loop.run_until_complete(
                    resources.enter_async_context(self.spec.lifespan(self.settings))
                )
            log.info("router.started", function=self.spec.name, group=self.group_id)
            while not self.stop_event.is_set():
                messages = [m for m in _next_batch(consumer, self.batch) if _usable(m)]
                if messages:
                    self._process(messages, consumer, producer, loop)
        finally:
            consumer.close()
            producer.flush(10)
            if self._client is not None:
                loop.run_until_complete(self._client.aclose())
            loop.run_until_complete(resources.aclose())
            loop.close()
            log.info("router.stopped", function=self.spec.name, handled=self.handled)

    def _process(self, messages: list[Message], consumer: Consumer, producer: Producer,
                 loop: asyncio.AbstractEventLoop) -> None:  # fmt: skip
        try:
            made = loop.run_until_complete(self._handle_all(messages))
        except _Abandoned as exc:
            log.warning("router.batch_abandoned", function=self.spec.name, error=str(exc))
            for tp in _first_offsets(messages):
                consumer.seek(tp)
            return
        self.handled += len(messages)
        # The handlers have run (and saved their state): their outputs are sent until Kafka
        # takes them all. Handling the batch again instead would lose them, as a function's
        # state already counts those events and takes them for duplicates.
        pending = [out for outputs in made for out in outputs]
        attempt = 0
        while pending:
            failed: list[Event] = []
            for out in pending:
                produce_event(
                    producer, self.catalog, self.settings.kafka_topic_prefix, out,
                    on_delivery=_remember_failure(failed, out),
                )  # fmt: skip
            while producer.flush(5) and not self.stop_event.is_set():
                pass
            if not failed and not len(producer):
                break
            attempt += 1
            self.undelivered += len(failed)
            log.error("router.outputs_not_delivered", function=self.spec.name,
                      failed=len(failed), attempt=attempt)  # fmt: skip
            if self.stop_event.is_set():
                return  # not committed: the batch comes again after a restart
            time.sleep(min(30.0, self.backoff_seconds * 2**attempt))
            pending = failed
        consumer.commit(offsets=_next_offsets(messages), asynchronous=False)


def produce_event(
    producer: Producer, catalog: Catalog, prefix: str, event: Event, on_delivery: Any = None
) -> None:
    """Queue ``event`` on its type's topic in binary mode (key = device id)."""
    record = to_kafka(event.to_cloudevent(catalog[event.type].schema_id))
    producer.produce(catalog[event.type].topic(prefix), record.value, record.key,
                     headers=list(record.headers.items()), on_delivery=on_delivery)  # fmt: skip
    producer.poll(0)


def _remember_failure(failed: list[Event], out: Event) -> Any:
    """A delivery callback that adds ``out`` to ``failed`` if Kafka did not take it."""
    return lambda err, _message: failed.append(out) if err else None


def _next_batch(consumer: Consumer, most: int) -> list[Message]:
    """Wait (up to 0.5 s) for the first message, then take what has already arrived, up
    to ``most``: under load the batches are full, and a lone event is not held back
    waiting for company (``consume(most, 0.5)`` would wait the whole 0.5 s for it)."""
    first = consumer.consume(1, timeout=0.5)
    if not first:
        return []
    return [*first, *consumer.consume(most - 1, timeout=0)] if most > 1 else first


def _usable(message: Message) -> bool:
    error = message.error()
    if error is None:
        return True
    if error.code() != KafkaError._PARTITION_EOF:
        log.warning("router.consume_error", error=error.str())
    return False


def _text(value: bytes | None) -> Any:
    try:
        return (value or b"").decode()
    except UnicodeDecodeError:
        return f"({len(value or b'')} bytes, not UTF-8)"


def _position(m: Message) -> tuple[tuple[str, int], int]:
    return (str(m.topic()), int(m.partition() or 0)), int(m.offset() or 0)


def _first_offsets(messages: list[Message]) -> list[TopicPartition]:
    first: dict[tuple[str, int], int] = {}
    for m in messages:
        where, offset = _position(m)
        first.setdefault(where, offset)
    return [TopicPartition(t, p, o) for (t, p), o in first.items()]


def _next_offsets(messages: list[Message]) -> list[TopicPartition]:
    last = dict(_position(m) for m in messages)
    return [TopicPartition(t, p, o + 1) for (t, p), o in last.items()]


@dataclass
class Router:
    """Every function of ``registry``, each in its own thread; ``stop`` drains them all."""

    registry: Registry
    catalog: Catalog
    settings: LoomSettings
    urls: Mapping[str, str] = field(default_factory=dict)  # function -> its `loom serve` URL
    runners: list[FunctionRunner] = field(default_factory=list)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Router:
        self.registry.check(self.catalog)
        for spec in self.registry.functions.values():
            runner = FunctionRunner(spec, self.catalog, self.settings, url=self.urls.get(spec.name))
            thread = threading.Thread(target=runner.run, name=f"router-{spec.name}", daemon=True)
            thread.start()
            self.runners.append(runner)
            self._threads.append(thread)
        return self

    def stop(self, timeout: float = 30.0) -> None:
        for runner in self.runners:
            runner.stop_event.set()
        for thread in self._threads:
            thread.join(timeout)
