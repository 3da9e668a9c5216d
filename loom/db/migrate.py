"""A small versioned-migration runner for Loom's own tables.

Migrations are SQL files ``NNNN_name.sql`` in ``loom/db/migrations``, applied in
order, each in its own transaction, recorded with a checksum in
``loom_schema_migrations``. A session-level advisory lock serialises concurrent
runners (several replicas starting at once). An applied file that was edited
afterwards is an error, not a silent skip.

Why our own: the tables are few and plain SQL; the catalog-derived event tables
are generated, not hand-written, and need code, not a DSL. Alembic or yoyo would
add a dependency and a second configuration for ~80 lines of behaviour.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg

from loom.errors import LoomError

__all__ = ["Migration", "MigrationError", "applied_migrations", "discover", "migrate"]

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_NAME = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")
_LOCK_KEY = 0x4C4F4F4D  # "LOOM"


class MigrationError(LoomError):
    """A migration file is malformed, was edited after it was applied, or failed."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.match(path.name)
        if match is None:
            raise MigrationError(f"{path}: name must be NNNN_lower_case.sql")
        found.append(Migration(int(match["version"]), match["name"], path.read_text()))
    versions = [m.version for m in found]
    if len(versions) != len(set(versions)):
        raise MigrationError(f"{directory}: two migrations share a version number")
    return found


def applied_migrations(conn: psycopg.Connection) -> dict[int, str]:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS loom_schema_migrations ("
        " version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
        " applied_at timestamptz NOT NULL DEFAULT now())"
    )
    rows = conn.execute("SELECT version, checksum FROM loom_schema_migrations").fetchall()
    return {int(version): str(checksum) for version, checksum in rows}


def migrate(
    database_url: str, directory: Path = MIGRATIONS_DIR, *, backend: str = "auto"
) -> list[Migration]:
    """Apply every migration not applied yet; returns those it applied.

    ``backend`` (``auto``, ``timescaledb`` or ``partitioned``) is how new event tables
    are made: ``auto`` uses TimescaleDB where the extension is available.
    """
    migrations = discover(directory)
    done: list[Migration] = []
    with psycopg.connect(database_url, autocommit=True, connect_timeout=10) as conn:
        conn.execute("SET lock_timeout = '60s'")
        conn.execute("SELECT set_config('loom.storage_backend', %s, false)", (backend,))
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            applied = applied_migrations(conn)
            for migration in migrations:
                if migration.version in applied:
                    if applied[migration.version] != migration.checksum:
                        raise MigrationError(
                            f"migration {migration.version:04d}_{migration.name} was changed "
                            "after it was applied; add a new migration instead"
                        )
                    continue
                try:
                    with conn.transaction():
                        conn.execute(migration.sql.encode())
                        conn.execute(
                            "INSERT INTO loom_schema_migrations (version, name, checksum)"
                            " VALUES (%s, %s, %s)",
                            (migration.version, migration.name, migration.checksum),
                        )
                except psycopg.Error as exc:
                    raise MigrationError(
                        f"migration {migration.version:04d}_{migration.name} failed: {exc}"
                    ) from exc
                done.append(migration)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return done
