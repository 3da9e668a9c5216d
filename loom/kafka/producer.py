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
from typing import TYPE_CHECKING, Any

from confluent_kafka import KafkaError, KafkaException, Producer

from loom.errors import ServiceError
from loom.kafka.config import producer_config
from loom.logging import get_logger
from loom.settings import LoomSettings

if TYPE_CHECKING:
    from loom.events import KafkaRecord

__all__ = [
    "AsyncProducer",
    "KafkaUnavailable",
    "OutgoingRecord",
    "ProducerQueueFull",
    "RecordTooLarge",
]

log = get_logger(__name__)
_TOO_LARGE = {KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.RECORD_LIST_TOO_LARGE}


class KafkaUnavailable(ServiceError):
    """The broker cannot take the write now (down, or no ack in time). Retry later."""


class ProducerQueueFull(KafkaUnavailable):
    """The local produce queue is full: the broker is slower than the input."""


class RecordTooLarge(ServiceError):
    """The broker refused the record as too large: retrying it unchanged cannot help."""


@dataclass(frozen=True)
class OutgoingRecord:
    topic: str
    value: bytes
    key: bytes | str | None
    headers: Sequence[tuple[str, bytes]]

    @classmethod
    def binary(cls, topic: str, record: KafkaRecord) -> OutgoingRecord:
        """A binary-mode CloudEvent (:func:`loom.events.to_kafka`) as a record for ``topic``."""
        return cls(topic, record.value, record.key, list(record.headers.items()))


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
        self._delivery_timeout = delivery_timeout
        self._fatal: str | None = None
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
    def status(self) -> str:
        if self._fatal is not None:
            return f"Kafka producer failed for good (restart needed): {self._fatal}"
        if self._available:
            return "ok"
        return f"Kafka at {self.bootstrap_servers} unavailable: {self._why}"

    def _on_error(self, err: KafkaError) -> None:
        # One broker or connection failing is librdkafka's to route around; only "all
        # brokers down" means no write can succeed, and a fatal error is for good.
        if err.fatal():
            self._fatal = err.str()
            log.error("kafka.fatal", error=err.str())
        elif err.code() == KafkaError._ALL_BROKERS_DOWN:
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
            try:
                self._producer.poll(0.05)
                if not self._available and time.monotonic() >= next_probe:
                    self._probe()
                    next_probe = time.monotonic() + 1.0
            except Exception:  # this thread must outlive any one callback
                log.exception("kafka.poll_failed")

    # ── sending ────────────────────────────────────────────────────────────
    def _check(self) -> None:
        if self._available is False or self._fatal is not None:
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
            if exc.args and exc.args[0].code() in _TOO_LARGE:
                raise RecordTooLarge(f"the record is too large for Kafka: {exc}") from exc
            raise KafkaUnavailable(f"Kafka refused the write: {exc}") from exc

    def _settle(self, future: asyncio.Future[None], err: KafkaError | None) -> None:
        if future.done():
            return
        if err is None:
            self._available = True
            future.set_result(None)
        elif err.code() in _TOO_LARGE:
            future.set_exception(RecordTooLarge(f"Kafka refused the record: {err.str()}"))
        else:
            future.set_exception(KafkaUnavailable(f"Kafka did not take the write: {err.str()}"))

    async def _wait(self, future: asyncio.Future[None]) -> None:
        # librdkafka reports every record within message.timeout.ms; the margin only
        # guards against a report that never comes (a timer, cheaper than wait_for).
        def too_late() -> None:
            if not future.done():
                future.set_exception(KafkaUnavailable("no delivery report from Kafka in time"))

        timer = future.get_loop().call_later(self._delivery_timeout + 5, too_late)
        try:
            await future
        finally:
            timer.cancel()

    async def send(self, record: OutgoingRecord) -> None:
        """Write one record; returns once the broker has acknowledged it."""
        self._check()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._produce(record, future)
        await self._wait(future)

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
        # One wait for all (not a task per record): the same bound as `send`.
        _, late = await asyncio.wait(futures, timeout=self._delivery_timeout + 5)
        for i, future in enumerate(futures):
            if future in late:
                future.cancel()
                results[i] = KafkaUnavailable("no delivery report from Kafka in time")
            elif future.exception() is not None:
                results[i] = future.exception()  # type: ignore[assignment]
        return results
