"""Running fetchers: once per CronJob (``loom fetch NAME``), or every few minutes in
``loom dev``.

For each account of a fetcher: take the account's lock, skip it while its back-off
lasts, resume from its cursor, send each batch to Kafka and save the cursor after
Kafka has acknowledged the batch. A failure (the source down, a wrong password,
Kafka down) is counted, and the account waits ``LOOM_FETCH_BACKOFF_SECONDS`` doubling
per failure (up to ``LOOM_FETCH_BACKOFF_MAX_SECONDS``) before it is tried again; the
other accounts go on. Errors are logged and kept with every secret of the account
replaced by ``***``. Items that break their schema are logged and skipped, so one
odd item cannot stop an account for good.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import Field

from loom.catalog import Catalog
from loom.events import RECORDED_TIME, to_kafka
from loom.kafka.producer import AsyncProducer, OutgoingRecord
from loom.logging import get_logger
from loom.runtime.cursors import CursorStore, PostgresCursorStore
from loom.runtime.event import Event
from loom.runtime.fetcher import Account, FetchContext, FetcherSpec, account_secrets, redact
from loom.runtime.registry import Registry
from loom.settings import LoomSettings, settings_for

__all__ = [
    "AccountReport",
    "FetchSettings",
    "KafkaSink",
    "Sink",
    "fetch_periodically",
    "run_fetcher",
    "run_fetchers",
]

log = get_logger("loom.fetch")
Sink = Callable[[list[Event]], Awaitable[None]]


class FetchSettings(LoomSettings):
    """How fetchers back off, how long a run may take, and how often `loom dev` runs them."""

    fetch_backoff_seconds: float = Field(
        default=60.0, gt=0, le=86_400,
        description="Wait after an account's first failure; doubles with each failure more.",
    )  # fmt: skip
    fetch_backoff_max_seconds: float = Field(
        default=6 * 3600.0, gt=0, le=7 * 86_400,
        description="The longest wait between tries of a failing account.",
    )  # fmt: skip
    fetch_timeout_seconds: float = Field(
        default=900.0, gt=0, le=86_400,
        description="One account's run is cut off (and counted as failed) after this long; "
        "the batches it had sent stay sent and the next run resumes after them.",
    )  # fmt: skip
    fetch_interval_seconds: float = Field(
        default=900.0, ge=5, le=86_400,
        description="How often `loom dev` runs every fetcher that has accounts.",
    )  # fmt: skip


@dataclass(frozen=True)
class AccountReport:
    """What one run did for one account."""

    fetcher: str
    account: str
    status: Literal["ok", "failed", "backing off", "busy"]
    emitted: int = 0
    invalid: int = 0
    batches: int = 0
    error: str | None = None
    next_attempt_at: datetime | None = None


class KafkaSink:
    """Sends a batch to its types' topics; returns once Kafka has all of it, or raises."""

    def __init__(self, producer: AsyncProducer, catalog: Catalog, prefix: str = "") -> None:
        self._producer = producer
        self._catalog = catalog
        self._prefix = prefix

    async def __call__(self, events: list[Event]) -> None:
        stamp = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        records = []
        for event in events:
            entry = self._catalog[event.type]
            stamped = replace(event, extensions={**event.extensions, RECORDED_TIME: stamp})
            record = to_kafka(stamped.to_cloudevent(entry.schema_id))
            records.append(OutgoingRecord.binary(entry.topic(self._prefix), record))
        for error in await self._producer.send_many(records):
            if error is not None:
                raise error


async def run_fetcher(
    spec: FetcherSpec,
    settings: LoomSettings,
    *,
    catalog: Catalog,
    sink: Sink,
    cursors: CursorStore,
    only: Sequence[str] = (),
    force: bool = False,
) -> list[AccountReport]:
    """Run ``spec`` once for each of its accounts (or those named in ``only``);
    ``force`` ignores a back-off still running."""
    config = settings_for(spec.settings_cls, settings)
    policy = settings_for(FetchSettings, settings)
    accounts = spec.accounts(config)
    unknown = sorted(set(only) - {a.key for a in accounts})
    if unknown:
        known = ", ".join(a.key for a in accounts) or "none configured"
        raise ValueError(f"fetcher {spec.name!r} has no account {unknown} (known: {known})")
    reports = []
    for account in accounts:
        if only and account.key not in only:
            continue
        async with cursors.claim(spec.name, account.key) as mine:
            if not mine:
                log.info("fetch.busy", fetcher=spec.name, account=account.key)
                reports.append(AccountReport(spec.name, account.key, "busy"))
                continue
            reports.append(await _run_account(spec, account, config, policy, catalog, sink,
                                              cursors, force))  # fmt: skip
    return reports


async def _run_account(
    spec: FetcherSpec,
    account: Account,
    config: LoomSettings,
    policy: FetchSettings,
    catalog: Catalog,
    sink: Sink,
    cursors: CursorStore,
    force: bool,
) -> AccountReport:
    key = account.key
    now = datetime.now(UTC)
    row = await cursors.get(spec.name, key)
    if not force and row.next_attempt_at is not None and row.next_attempt_at > now:
        log.info("fetch.backing_off", fetcher=spec.name, account=key,
                 until=row.next_attempt_at.isoformat(), failures=row.failures)  # fmt: skip
        return AccountReport(spec.name, key, "backing off", error=row.last_error,
                             next_attempt_at=row.next_attempt_at)  # fmt: skip
    bound = log.bind(fetcher=spec.name, account=key)
    ctx = FetchContext(fetcher=spec.name, settings=config, log=bound, now=now, account=key)
    emitted = invalid = batches = 0
    try:
        async with asyncio.timeout(policy.fetch_timeout_seconds):
            async for batch in spec.fetch(account, dict(row.cursor), ctx):
                good = []
                for event in batch.events:
                    if event.type not in spec.produces:
                        raise TypeError(f"made {event.type!r}, which it does not declare")
                    bad = catalog.violations(event.type, event.data)
                    if bad:
                        invalid += 1
                        problems = [f"{v.pointer}: {v.message}" for v in bad][:5]
                        bound.warning("fetch.invalid_item", type=event.type, id=event.id,
                                      problems=problems)  # fmt: skip
                        continue
                    good.append(event)
                if good:
                    await sink(good)
                await cursors.advance(spec.name, key, batch.cursor, len(good))
                emitted += len(good)
                batches += 1
    except Exception as exc:  # noqa: BLE001 — one account's failure must not stop the others
        text = f"{type(exc).__name__}: {exc}".replace("\x00", "")  # PostgreSQL text holds no NUL
        error = redact(text, account_secrets(account))[:2000]
        wait = min(policy.fetch_backoff_seconds * 2**row.failures, policy.fetch_backoff_max_seconds)
        retry_at = datetime.now(UTC) + timedelta(seconds=wait)
        await cursors.failed(spec.name, key, error, retry_at)
        bound.warning("fetch.failed", error=error, emitted=emitted, failures=row.failures + 1,
                      retry_at=retry_at.isoformat())  # fmt: skip
        return AccountReport(spec.name, key, "failed", emitted, invalid, batches, error, retry_at)
    await cursors.succeeded(spec.name, key, now)
    bound.info("fetch.done", emitted=emitted, invalid=invalid, batches=batches)
    return AccountReport(spec.name, key, "ok", emitted, invalid, batches)


async def run_fetchers(
    specs: Sequence[FetcherSpec],
    settings: LoomSettings,
    catalog: Catalog,
    *,
    only: Sequence[str] = (),
    force: bool = False,
) -> list[AccountReport]:
    """Run ``specs`` once against the real Kafka and PostgreSQL of ``settings``."""
    producer = AsyncProducer(settings, client_id="loom-fetch").start()
    try:
        sink = KafkaSink(producer, catalog, settings.kafka_topic_prefix)
        async with PostgresCursorStore.connect(settings.database_url) as cursors:
            reports: list[AccountReport] = []
            for spec in specs:
                reports += await run_fetcher(spec, settings, catalog=catalog, sink=sink,
                                             cursors=cursors, only=only, force=force)  # fmt: skip
            return reports
    finally:
        await asyncio.to_thread(producer.close)


def fetch_periodically(
    registry: Registry, settings: LoomSettings, catalog: Catalog, stop: threading.Event
) -> threading.Thread | None:
    """In `loom dev`: run every fetcher that has accounts now and then every
    ``LOOM_FETCH_INTERVAL_SECONDS`` in a thread of its own, until ``stop`` is set."""
    specs = [s for s in registry.fetchers.values()
             if s.accounts(settings_for(s.settings_cls, settings))]  # fmt: skip
    if not specs:
        return None
    interval = settings_for(FetchSettings, settings).fetch_interval_seconds

    def loop() -> None:
        while not stop.is_set():
            try:
                asyncio.run(run_fetchers(specs, settings, catalog))
            except Exception:  # the next round tries again
                log.exception("fetch.round_failed")
            stop.wait(interval)

    thread = threading.Thread(target=loop, name="loom-fetch", daemon=True)
    thread.start()
    return thread
