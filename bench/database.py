"""The database a benchmark's PostgreSQL rows use: the run's own server, migrated."""

from __future__ import annotations

from loom.db import migrate
from loom.services import LocalServices


def migrated_database(services: LocalServices | None) -> str | None:
    """The URL of ``services``' PostgreSQL after migrating it; None without services
    (a benchmark then leaves out its PostgreSQL rows)."""
    if services is None:
        return None
    url = services.settings().database_url
    migrate(url)
    return url
