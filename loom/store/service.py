"""The store as a whole: migrations, a connection pool, the blob store and the writer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from psycopg_pool import AsyncConnectionPool

from loom.catalog import Catalog, default_catalog
from loom.db.migrate import migrate
from loom.logging import get_logger
from loom.settings import LoomSettings
from loom.store.blobs import BlobStore, open_blob_store
from loom.store.settings import StoreSettings
from loom.store.tables import EventTable, event_tables
from loom.store.writer import GroupCommitWriter

__all__ = ["Store", "open_store", "store_settings"]

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
    if isinstance(settings, StoreSettings):
        return settings
    shared = {name: getattr(settings, name) for name in LoomSettings.model_fields}
    return StoreSettings(**shared)


@asynccontextmanager
async def open_store(
    settings: LoomSettings, catalog: Catalog | None = None, *, run_migrations: bool = True
) -> AsyncIterator[Store]:
    """Migrate, connect and start the writer; on exit, commit what is queued and close."""
    config = store_settings(settings)
    tables = event_tables(catalog or default_catalog())
    if run_migrations:
        await asyncio.to_thread(migrate, config.database_url, backend=config.store_backend)
    pool = AsyncConnectionPool(
        config.database_url,
        min_size=config.store_connections,
        max_size=config.store_connections,
        timeout=10.0,
        open=False,
        check=AsyncConnectionPool.check_connection,
        kwargs={"connect_timeout": 5},
    )
    await pool.open(wait=False)
    blobs = open_blob_store(config.store_blob_url, config.store_s3_endpoint_url)
    writer = GroupCommitWriter(
        pool,
        tables,
        blobs,
        max_rows=config.store_max_batch_rows,
        connections=config.store_connections,
    )
    await writer.start()
    log.info("store.started", tables=len(tables), backend=config.store_backend)
    try:
        yield Store(config, tables, pool, blobs, writer)
    finally:
        await writer.close()
        await pool.close()
        log.info("store.stopped", **vars(writer.stats))
