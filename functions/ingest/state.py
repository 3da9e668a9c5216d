"""Everything a request handler needs, built once per app."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

import psycopg
from fastapi import Depends
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool
from starlette.requests import Request

from functions.ingest.accept import Accepted, Acceptor, RateLimiter
from functions.ingest.auth import Principal, TokenStore
from functions.ingest.command_notify import CommandNotifier
from functions.ingest.commands import CommandService
from functions.ingest.devices import ActivityTracker, DeviceRegistry
from functions.ingest.metrics import IngestMetrics
from functions.ingest.problems import ServiceUnavailable, TooLarge
from functions.ingest.settings import IngestSettings
from loom.catalog import Catalog
from loom.db import migrate
from loom.kafka import AsyncProducer, KafkaUnavailable, RecordTooLarge
from loom.logging import get_logger

__all__ = ["Admin", "IngestState", "ingest_state", "require_admin"]

log = get_logger("loom.ingest")


@dataclass
class IngestState:
    settings: IngestSettings
    catalog: Catalog
    producer: AsyncProducer
    pool: AsyncConnectionPool
    read_pool: AsyncConnectionPool  # reads of stored data: apart, with a statement timeout
    metrics: IngestMetrics = field(default_factory=IngestMetrics)
    database_status: str = "migrations not applied yet"
    _migrator: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        s = self.settings
        self.acceptor = Acceptor(self.catalog, s.kafka_topic_prefix)
        self.tokens = TokenStore(
            self.pool, s.ingest_token_cache_seconds, s.ingest_retry_after_seconds
        )
        self.devices = DeviceRegistry(self.pool, s.ingest_retry_after_seconds)
        self.activity = ActivityTracker(self.pool)
        self.limiter = RateLimiter(s.ingest_rate_limit_per_device)
        # issuing a command holds a connection while Kafka takes its record: a pool apart
        self.command_pool = AsyncConnectionPool(
            s.database_url, min_size=0, max_size=s.ingest_command_connections,
            timeout=s.ingest_command_issue_wait_seconds, open=False,
            check=AsyncConnectionPool.check_connection, kwargs={"connect_timeout": 3},
        )  # fmt: skip
        self.commands = CommandService(
            self.pool, self.producer, self.catalog, self.metrics, issue_pool=self.command_pool,
            topic_prefix=s.kafka_topic_prefix, retry_after=s.ingest_retry_after_seconds,
            issue_wait=s.ingest_command_issue_wait_seconds,
            max_bytes=s.ingest_command_response_max_bytes,
        )  # fmt: skip
        self.notifier = CommandNotifier(s.database_url, on_revoked=self._forget)
        self.largest_event = max(t.max_bytes for t in self.catalog.ingestable()) + 64 * 1024

    # ── lifecycle ──────────────────────────────────────────────────────────
    async def start(self) -> None:
        await asyncio.to_thread(self.catalog.warm)
        self.producer.start()
        await self.pool.open(wait=False)
        await self.read_pool.open(wait=False)
        await self.command_pool.open(wait=False)
        self._migrator = asyncio.create_task(self._migrate_until_done(), name="migrate")
        self.activity.start()
        self.notifier.start()

    async def stop(self) -> None:
        if self._migrator is not None:
            self._migrator.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._migrator
        await self.activity.stop()
        await self.notifier.stop()
        left = await asyncio.to_thread(self.producer.close, 10.0)
        if left:
            log.error("ingest.undelivered_at_shutdown", count=left)
        await self.read_pool.close()
        await self.command_pool.close()
        await self.pool.close()

    async def _migrate_until_done(self) -> None:
        while True:
            try:
                applied = await asyncio.to_thread(migrate, self.settings.database_url)
            except Exception as exc:  # noqa: BLE001 - reported by /readyz, retried
                self.database_status = f"database at {self._db_host()} unavailable"
                log.warning("ingest.database_unavailable", error=str(exc))
                await asyncio.sleep(2.0)
                continue
            self.database_status = "ok"
            if applied:
                log.info("ingest.migrated", versions=[m.version for m in applied])
            return

    def _db_host(self) -> str:
        """host:port of the database, never its user or password."""
        try:
            info = conninfo_to_dict(self.settings.database_url)
        except psycopg.ProgrammingError:
            return "(unparsable URL)"
        return f"{info.get('host', 'localhost')}:{info.get('port', 5432)}"

    # ── auth and delivery ──────────────────────────────────────────────────
    async def principal(self, request: Request) -> Principal:
        return await self.tokens.principal(request.headers.get("authorization"))

    def revoked(self, device_id: str) -> None:
        """The device's tokens were revoked here (rotated, or the device deleted): forget
        their checks and wake its command connections, which check their token again and
        close. Other replicas hear of it by NOTIFY (:mod:`.command_notify`)."""
        self._forget(device_id)
        self.notifier.wake(device_id)

    def _forget(self, device_id: str | None) -> None:
        if device_id is None:
            self.tokens.forget_all()
        else:
            self.tokens.forget_device(device_id)

    def rejected(self, exc: Exception, item: Any, status: int) -> None:
        """Count and log an event refused before it reached Kafka."""
        attrs = item if isinstance(item, dict) else {}
        name = attrs.get("type") if isinstance(attrs.get("type"), str) else "(unknown)"
        # Only catalog types become label values: a client must not grow the metrics.
        self.metrics.events.labels(name if name in self.catalog else "(unknown)", "rejected").inc()
        log.info("ingest.rejected", event_id=attrs.get("id"), type=name,
                 device_id=attrs.get("partitionkey"), status=status, error=str(exc))  # fmt: skip

    def unavailable(self, exc: Exception) -> ServiceUnavailable:
        return ServiceUnavailable(str(exc), retry_after=self.settings.ingest_retry_after_seconds)

    async def deliver(self, accepted: Sequence[Accepted]) -> list[Exception | None]:
        """Produce every event; each result is None once the broker has it, else the error."""
        started = time.perf_counter()
        try:
            if len(accepted) == 1:
                await self.producer.send(accepted[0].record)
                results: list[Exception | None] = [None]
            else:
                results = await self.producer.send_many([a.record for a in accepted])
        except KafkaUnavailable as exc:
            results = [exc] * len(accepted)
        self.metrics.produce_seconds.observe(time.perf_counter() - started)
        debug = self.settings.log_level == "DEBUG"
        for event, error in zip(accepted, results, strict=True):
            if error is None:
                self.metrics.kafka_sent.labels(event.record.topic).inc()
                self.metrics.events.labels(event.type.type, "accepted").inc()
                if event.device_id is not None:
                    self.activity.seen(event.device_id)
                if debug:  # one line per event only when asked for: this is the hot path
                    log.debug("ingest.accepted", event_id=event.id, device_id=event.device_id,
                              type=event.type.type, topic=event.record.topic)  # fmt: skip
            else:
                self.metrics.events.labels(event.type.type, "unavailable").inc()
                log.warning("ingest.not_stored", event_id=event.id, device_id=event.device_id,
                            type=event.type.type, error=str(error))  # fmt: skip
        return [self._answerable(e) for e in results]

    def _answerable(self, error: Exception | None) -> Exception | None:
        if isinstance(error, KafkaUnavailable):
            return self.unavailable(error)
        if isinstance(error, RecordTooLarge):
            return TooLarge(f"Kafka refused the event as too large ({error})")
        return error


def ingest_state(request: Request) -> IngestState:
    """The service's state, for routes and their dependencies."""
    state: IngestState = request.app.state.ingest
    return state


async def require_admin(request: Request) -> IngestState:
    """A dependency: the state, once the request's token is shown to be an admin's."""
    state = ingest_state(request)
    principal: Principal = await state.principal(request)
    principal.require_admin()
    return state


Admin = Annotated[IngestState, Depends(require_admin)]
