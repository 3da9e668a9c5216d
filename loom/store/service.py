"""The store as a whole: migrations, a connection pool, the blob store and the writer."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import psycopg
from psycopg_pool import AsyncConnectionPool

from loom.catalog import Catalog, default_catalog
from loom.db.migrate import migrate
from loom.db.pool import open_pool
from loom.logging import get_logger
from loom.settings import LoomSettings, settings_for
from loom.store.blobs import BlobStore, open_blob_store
from loom.store.partitions import maintain
from loom.store.settings import StoreSettings
from loom.store.tables import EventTable, event_tables
from loom.store.writer import GroupCommitWriter

__all__ = ["Store", "maintain_periodically", "open_store", "store_settings"]

log = get_logger(__name__)


@dataclass
class Store:
    settings: StoreSettings
    tables: dict[str, EventTable]
    pool: AsyncConnectionPool
    blobs: BlobStore
    writer: GroupCommitWriter


def store_settings(settings: LoomSettings) -> StoreSettings:
    """``settings`` as StoreSettings: its shared values, ``LOOM_STORE_*`` from the env."""
    return settings_for(StoreSettings, settings)


@asynccontextmanager
async def open_store(
    settings: LoomSettings, catalog: Catalog | None = None, *, run_migrations: bool = True
) -> AsyncIterator[Store]:
    """Migrate, connect and start the writer; on exit, commit what is queued and close."""
    config = store_settings(settings)
    catalog = catalog or default_catalog()
    tables = event_tables(catalog)
    if run_migrations:
        await asyncio.to_thread(migrate, config.database_url, backend=config.store_backend)
    async with open_pool(
        config.database_url, min_size=config.store_connections, max_size=config.store_connections
    ) as pool:
        blobs = open_blob_store(config.store_blob_url, config.store_s3_endpoint_url)
        writer = GroupCommitWriter(
            pool,
            tables,
            blobs,
            max_rows=config.store_max_batch_rows,
            connections=config.store_connections,
            linger=config.store_linger_ms / 1000,
            schema_versions={t.type: t.schema_version for t in catalog.stored()},
        )
        await writer.start()
        log.info("store.started", tables=len(tables), backend=config.store_backend)
        try:
            yield Store(config, tables, pool, blobs, writer)
        finally:
            await writer.close()
            log.info("store.stopped", **vars(writer.stats))


def maintain_periodically(
    settings: LoomSettings, catalog: Catalog, stop: threading.Event
) -> threading.Thread:
    """``loom db maintain`` every LOOM_STORE_MAINTAIN_INTERVAL_SECONDS (first run now) in a
    thread, until ``stop`` is set: what the CronJob does in the cluster."""
    config = store_settings(settings)
    tables = event_tables(catalog)

    async def once() -> None:
        async with await psycopg.AsyncConnection.connect(
            config.database_url, autocommit=True, connect_timeout=10
        ) as conn:
            report = await maintain(conn, tables, ahead_days=config.store_partitions_ahead_days)
        log.info("store.maintained", created=len(report.created), dropped=report.dropped,
                 policies=report.policies)  # fmt: skip

    def loop() -> None:
        while not stop.is_set():
            try:
                asyncio.run(once())
            except Exception:  # the next round tries again; the store still works meanwhile
                log.exception("store.maintenance_failed")
            stop.wait(config.store_maintain_interval_seconds)

    thread = threading.Thread(target=loop, name="store-maintenance", daemon=True)
    thread.start()
    return thread
