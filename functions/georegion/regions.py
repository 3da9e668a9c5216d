"""Saved regions as the function sees them: read from PostgreSQL (table ``georegions``,
managed through ingest's admin ``/regions`` routes) and cached for a short while, or a
fixed list (tests, benchmarks, a deployment without a database of regions)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from functions.georegion.geometry import Circle, Shape, parse_polygon
from loom.logging import get_logger
from loom.runtime.invoke import Unavailable

__all__ = ["PostgresRegions", "Region", "RegionSource", "StaticRegions", "region_from_row"]

log = get_logger("loom.function.georegion")

COLUMNS = "region_id, device_id, name, kind, latitude, longitude, radius_m, polygon"
RETRY_AFTER_FAILURE_SECONDS = 5.0


@dataclass(frozen=True)
class Region:
    region_id: str
    name: str
    kind: str  # home, work or custom
    shape: Shape
    device_id: str | None = None  # None: every device

    def applies_to(self, device_id: str) -> bool:
        return self.device_id is None or self.device_id == device_id


def region_from_row(row: dict[str, Any]) -> Region:
    """A ``georegions`` row as a Region; ValueError if its shape is unusable."""
    if row.get("polygon") is not None:
        shape: Shape = parse_polygon(row["polygon"])
    elif None not in (row.get("latitude"), row.get("longitude"), row.get("radius_m")):
        shape = Circle(float(row["latitude"]), float(row["longitude"]), float(row["radius_m"]))
    else:
        raise ValueError("neither a polygon nor a centre and radius")
    return Region(str(row["region_id"]), str(row["name"]), str(row["kind"]), shape,
                  row.get("device_id"))  # fmt: skip


class RegionSource(Protocol):
    async def for_device(self, device_id: str) -> list[Region]: ...


@dataclass
class StaticRegions:
    """A fixed list of regions."""

    regions: Iterable[Region]

    async def for_device(self, device_id: str) -> list[Region]:
        return [r for r in self.regions if r.applies_to(device_id)]


class PostgresRegions:
    """Every row of ``georegions``, read again when older than ``ttl`` seconds.

    Regions are few (tens, hundreds), so all are read at once. If the database cannot be
    reached, the regions read last go on being used (and the read is tried again a few
    seconds later); with none read yet, the event waits: :class:`Unavailable`.
    """

    def __init__(self, pool: AsyncConnectionPool, ttl: float) -> None:
        self._pool = pool
        self._ttl = ttl
        self._regions: list[Region] | None = None
        self._fresh_until = 0.0
        self._lock = asyncio.Lock()

    async def for_device(self, device_id: str) -> list[Region]:
        if self._regions is None or time.monotonic() >= self._fresh_until:
            async with self._lock:
                if self._regions is None or time.monotonic() >= self._fresh_until:
                    await self._refresh()
        assert self._regions is not None
        return [r for r in self._regions if r.applies_to(device_id)]

    async def _refresh(self) -> None:
        try:
            async with (
                self._pool.connection(timeout=5.0) as conn,
                conn.cursor(row_factory=dict_row) as cur,
            ):
                await cur.execute(f"SELECT {COLUMNS} FROM georegions ORDER BY region_id")
                rows = await cur.fetchall()
        except (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout,
                psycopg.errors.UndefinedTable) as exc:  # fmt: skip
            if self._regions is None:
                raise Unavailable(
                    f"georegion cannot read the saved regions (is the database up and "
                    f"migrated with `loom db migrate`?): {exc}"
                ) from exc
            log.warning("georegion.regions_stale", error=str(exc), regions=len(self._regions))
            self._fresh_until = time.monotonic() + RETRY_AFTER_FAILURE_SECONDS
            return
        regions = []
        for row in rows:
            try:
                regions.append(region_from_row(row))
            except (ValueError, TypeError) as exc:
                log.warning("georegion.region_unusable", region_id=row.get("region_id"),
                            error=str(exc))  # fmt: skip
        self._regions = regions
        self._fresh_until = time.monotonic() + self._ttl
