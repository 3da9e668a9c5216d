"""An asyncio face on confluent-kafka's producer: ``await send(...)`` returns once the
broker has acknowledged the write (``acks=all``), or raises.

librdkafka is driven by one background thread that polls for delivery reports and
hands each result to the event loop. Broker availability is tracked from librdkafka's
error callback and a periodic metadata probe while down, so callers can refuse work
at once (503) instead of queueing it behind a dead broker.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from loom.errors import ServiceError
from loom.kafka.config import producer_config
from loom.logging import get_logger
from loom.settings import LoomSettings

__all__ = ["AsyncProducer", "KafkaUnavailable", "OutgoingRecord", "ProducerQueueFull"]

log = get_logger(__name__)
_DOWN_CODES = {KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT, KafkaError._RESOLVE}


class KafkaUnavailable(ServiceError):
    """The broker cannot take the write now (down, or no ack in time). Retry later."""


class ProducerQueueFull(KafkaUnavailable):
    """The local produce queue is full: the broker is slower than the input."""


@dataclass(frozen=True)
class OutgoingRecord:
    topic: str
    value: bytes
    key: bytes | str | None
    headers: Sequence[tuple[str, bytes]]


class AsyncProducer:
    """One idempotent ``acks=all`` producer shared by every request of a process."""

    def __init__(
        self,
        settings: LoomSettings,
        *,
        client_id: str = "loom",
        delivery_timeout: float = 10.0,
        **config: Any,
    ) -> None:
        self.bootstrap_servers = settings.kafka_bootstrap_servers
        self._producer = Producer(
            producer_config(
                settings,
                client_id,
                **{
                    "message.timeout.ms": int(delivery_timeout * 1000),
                    "error_cb": self._on_error,
                    **config,
                },
            )
        )
        self._available: bool | None = None
        self._why = "not checked yet"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kafka-poll", daemon=True)

    # ── lifecycle ──────────────────────────────────────────────────────────
    def start(self) -> AsyncProducer:
        if not self._thread.is_alive():
            self._thread.start()
        return self

    def close(self, timeout: float = 10.0) -> int:
        """Deliver what is queued (up to ``timeout``), stop polling; returns undelivered count."""
        left: int = self._producer.flush(timeout)
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        return left

    # ── availability ───────────────────────────────────────────────────────
    @property
    def available(self) -> bool:
        return bool(self._available)

    @property
    def status(self) -> str:
        if self._available:
            return "ok"
        return f"Kafka at {self.bootstrap_servers} unavailable: {self._why}"

    def _on_error(self, err: KafkaError) -> None:
        if err.code() in _DOWN_CODES or err.fatal():
            if self._available is not False:
                log.warning("kafka.unavailable", error=err.str())
            self._available, self._why = False, err.str()

    def _probe(self) -> None:
        try:
            metadata = self._producer.list_topics(timeout=2.0)
        except KafkaException as exc:
            self._available, self._why = False, str(exc.args[0] if exc.args else exc)
            return
        if metadata.brokers:
            if self._available is False:
                log.info("kafka.available", bootstrap_servers=self.bootstrap_servers)
            self._available = True

    def _run(self) -> None:
        next_probe = 0.0
        while not self._stop.is_set():
            self._producer.poll(0.05)
            if not self._available and time.monotonic() >= next_probe:
                self._probe()
                next_probe = time.monotonic() + 1.0

    # ── sending ────────────────────────────────────────────────────────────
    def _check(self) -> None:
        if self._available is False:
            raise KafkaUnavailable(self.status)

    def _produce(self, record: OutgoingRecord, future: asyncio.Future[None]) -> None:
        loop = future.get_loop()

        def on_delivery(err: KafkaError | None, _msg: object) -> None:
            loop.call_soon_threadsafe(self._settle, future, err)

        try:
            self._producer.produce(
                record.topic,
                record.value,
                record.key,
                headers=list(record.headers),
                on_delivery=on_delivery,
            )
        except BufferError:
            raise ProducerQueueFull("the Kafka produce queue is full; retry shortly") from None
        except KafkaException as exc:
            raise KafkaUnavailable(f"Kafka refused the write: {exc}") from exc

    def _settle(self, future: asyncio.Future[None], err: KafkaError | None) -> None:
        if future.done():
            return
        if err is None:
            self._available = True
            future.set_result(None)
        else:
            if err.code() in (KafkaError._MSG_TIMED_OUT, *_DOWN_CODES):
                self._available, self._why = False, err.str()
            future.set_exception(KafkaUnavailable(f"Kafka did not take the write: {err.str()}"))

    async def send(self, record: OutgoingRecord) -> None:
        """Write one record; returns once the broker has acknowledged it."""
        self._check()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._produce(record, future)
        await future

    async def send_many(self, records: Sequence[OutgoingRecord]) -> list[Exception | None]:
        """Write every record; each result is None (acknowledged) or its error."""
        if not records:
            return []
        self._check()
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[None]] = []
        results: list[Exception | None] = [None] * len(records)
        for record in records:
            future: asyncio.Future[None] = loop.create_future()
            try:
                self._produce(record, future)
            except KafkaUnavailable as exc:
                future.set_exception(exc)
            futures.append(future)
        for i, outcome in enumerate(await asyncio.gather(*futures, return_exceptions=True)):
            if isinstance(outcome, Exception):
                results[i] = outcome
        return results
