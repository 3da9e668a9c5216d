"""The event store: tables derived from the catalog, group-commit writes, retention."""

from loom.store.blobs import BlobRef, BlobStore, LocalBlobStore, open_blob_store
from loom.store.partitions import MaintenanceReport, maintain
from loom.store.service import Store, maintain_periodically, open_store, store_settings
from loom.store.settings import StoreSettings
from loom.store.tables import EventTable, event_tables
from loom.store.writer import GroupCommitWriter, StoreUnavailable

__all__ = [
    "BlobRef",
    "BlobStore",
    "EventTable",
    "GroupCommitWriter",
    "LocalBlobStore",
    "MaintenanceReport",
    "Store",
    "StoreSettings",
    "StoreUnavailable",
    "event_tables",
    "maintain",
    "maintain_periodically",
    "open_blob_store",
    "open_store",
    "store_settings",
]
