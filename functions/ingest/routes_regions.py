"""Saved georegions (admin token): list, create, get, update, delete.

A region is a circle (``latitude``, ``longitude``, ``radius_m``) or a GeoJSON ``polygon``,
of kind home, work or custom, for one device (``device_id``) or all (``null``). The
``georegion`` function reads them (table ``georegions``) and emits enter/exit events;
a change here takes effect there within ``LOOM_GEOREGION_REGIONS_TTL_SECONDS``.
"""

from __future__ import annotations

import contextlib
import secrets
from datetime import datetime
from typing import Annotated, Any, Literal

import psycopg
from fastapi import APIRouter, FastAPI, Path, Query
from fastapi.exceptions import RequestValidationError
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from functions.georegion.geometry import parse_polygon
from functions.ingest.openapi import PROBLEM_RESPONSES
from functions.ingest.problems import BadRequest, Conflict, NotFound, ServiceUnavailable
from functions.ingest.state import Admin
from loom.logging import get_logger

__all__ = ["Region", "RegionIn", "RegionPatch", "add_region_routes"]

log = get_logger(__name__)
_ID = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
RegionId = Annotated[str, Path(pattern=_ID)]
Kind = Literal["home", "work", "custom"]
Position = Annotated[list[float], Field(min_length=2, max_length=3)]
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: PROBLEM_RESPONSES[code] for code in ("401", "403", "413", "503")
}
_CONTENT = PROBLEM_RESPONSES["401"]["content"]
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    **_ERRORS, "404": {"description": "No such region.", "content": _CONTENT},
}  # fmt: skip


class GeoPolygon(BaseModel):
    """A GeoJSON Polygon geometry: rings of [longitude, latitude], outline first, then holes.
    Open rings are closed; a ring may not cross the antimeridian."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    type: Literal["Polygon"]
    coordinates: list[Annotated[list[Position], Field(min_length=3, max_length=5000)]] = Field(
        min_length=1, max_length=20,
        examples=[[[[13.40, 52.52], [13.41, 52.52], [13.41, 52.53], [13.40, 52.53]]]],
    )  # fmt: skip

    @model_validator(mode="after")
    def _closed_and_sane(self) -> GeoPolygon:
        polygon = parse_polygon(self.model_dump())  # ValueError: a 422 saying what is wrong
        self.coordinates = [[list(p) for p in ring] for ring in polygon.rings]
        return self


class _Shape(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    latitude: float | None = Field(default=None, ge=-90, le=90, examples=[52.52])
    longitude: float | None = Field(default=None, ge=-180, le=180, examples=[13.405])
    radius_m: float | None = Field(default=None, gt=0, le=100_000, examples=[150])
    polygon: GeoPolygon | None = None


class RegionIn(_Shape):
    """A new region: a circle (latitude, longitude, radius_m) or a polygon, not both.
    ``region_id`` is generated when left out; ``device_id`` null means every device."""

    region_id: str | None = Field(default=None, pattern=_ID, examples=["home"])
    device_id: str | None = Field(default=None, pattern=_ID, examples=["pixel-7-ab12"])
    name: str = Field(min_length=1, max_length=200, examples=["Home"])
    kind: Kind = "custom"

    @model_validator(mode="after")
    def _one_shape(self) -> RegionIn:
        circle = (self.latitude, self.longitude, self.radius_m)
        if self.polygon is not None and any(v is not None for v in circle):
            raise ValueError("a region is a circle or a polygon, not both")
        if self.polygon is None and any(v is None for v in circle):
            raise ValueError("a region needs latitude, longitude and radius_m, or a polygon")
        return self


class RegionPatch(_Shape):
    """Changes: a polygon replaces a circle and circle fields replace a polygon (give all
    three then); ``device_id`` null makes the region every device's."""

    device_id: str | None = Field(default=None, pattern=_ID)
    name: str | None = Field(default=None, min_length=1, max_length=200)
    kind: Kind | None = None


class Region(BaseModel):
    region_id: str
    device_id: str | None
    name: str
    kind: Kind
    latitude: float | None
    longitude: float | None
    radius_m: float | None
    polygon: GeoPolygon | None
    created_at: datetime
    updated_at: datetime


_COLUMNS = ("region_id, device_id, name, kind, latitude, longitude, radius_m, polygon,"
            " created_at, updated_at")  # fmt: skip
_WRITTEN = ("device_id", "name", "kind", "latitude", "longitude", "radius_m", "polygon")


class RegionStore:
    """The ``georegions`` table."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    @contextlib.asynccontextmanager
    async def _conn(self) -> Any:
        try:
            async with self._pool.connection() as conn:
                yield conn
        except psycopg.errors.ForeignKeyViolation as exc:
            raise NotFound("no such device: register it first (POST /devices)") from exc
        except psycopg.errors.UniqueViolation as exc:
            raise Conflict("a region with this region_id exists already") from exc
        except (psycopg.DataError, psycopg.errors.CheckViolation) as exc:
            raise BadRequest(f"the database cannot store this value: {exc}") from exc
        except (PoolTimeout, psycopg.OperationalError, psycopg.InternalError) as exc:
            log.warning("regions.database_unavailable", error=str(exc))
            raise ServiceUnavailable("database unavailable", retry_after=2) from exc

    async def list(self, device_id: str | None) -> list[Region]:
        where, args = "", []
        if device_id is not None:
            where, args = " WHERE device_id = %s OR device_id IS NULL", [device_id]
        async with self._conn() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(f"SELECT {_COLUMNS} FROM georegions{where} ORDER BY region_id",
                              args)  # fmt: skip
            return [Region(**row) for row in await cur.fetchall()]

    async def get(self, region_id: str) -> Region:
        async with self._conn() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(f"SELECT {_COLUMNS} FROM georegions WHERE region_id = %s",
                              (region_id,))  # fmt: skip
            row = await cur.fetchone()
        if row is None:
            raise NotFound(f"no region {region_id!r}")
        return Region(**row)

    async def create(self, new: RegionIn) -> Region:
        values = _values(new)
        values["region_id"] = new.region_id or f"reg-{secrets.token_hex(6)}"
        names = ", ".join(values)
        async with self._conn() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                f"INSERT INTO georegions ({names}) VALUES ({', '.join(['%s'] * len(values))})"
                f" RETURNING {_COLUMNS}",
                list(values.values()),
            )
            row = await cur.fetchone()
        assert row is not None
        return Region(**row)

    async def patch(self, region_id: str, patch: RegionPatch) -> Region:
        changes = patch.model_dump(exclude_unset=True)
        async with self._conn() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(f"SELECT {_COLUMNS} FROM georegions WHERE region_id = %s"
                              " FOR UPDATE", (region_id,))  # fmt: skip
            row = await cur.fetchone()
            if row is None:
                raise NotFound(f"no region {region_id!r}")
            merged = {k: row[k] for k in _WRITTEN}
            for key in ("name", "kind"):  # NOT NULL: null leaves them as they are
                if changes.get(key, "") is None:
                    del changes[key]
            if changes.get("polygon") is not None:
                merged.update(latitude=None, longitude=None, radius_m=None)
            elif any(changes.get(k) is not None for k in ("latitude", "longitude", "radius_m")):
                merged["polygon"] = None
            merged.update(changes)
            try:
                region = RegionIn(**merged)
            except ValidationError as exc:
                errors = exc.errors(include_url=False, include_context=False, include_input=False)
                raise RequestValidationError(
                    [{**e, "loc": ("body", *e["loc"])} for e in errors]
                ) from None
            sets = ", ".join(f"{k} = %({k})s" for k in _WRITTEN)
            await cur.execute(
                f"UPDATE georegions SET {sets}, updated_at = now() WHERE region_id = %(id)s"
                f" RETURNING {_COLUMNS}",
                {**_values(region), "id": region_id},
            )
            updated = await cur.fetchone()
        assert updated is not None
        return Region(**updated)

    async def delete(self, region_id: str) -> Region:
        async with self._conn() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(f"DELETE FROM georegions WHERE region_id = %s RETURNING {_COLUMNS}",
                              (region_id,))  # fmt: skip
            row = await cur.fetchone()
        if row is None:
            raise NotFound(f"no region {region_id!r}")
        return Region(**row)


def _values(region: RegionIn) -> dict[str, Any]:
    values = {k: getattr(region, k) for k in _WRITTEN}
    if region.polygon is not None:
        values["polygon"] = Jsonb(region.polygon.model_dump())
    return values


def add_region_routes(app: FastAPI) -> None:
    # The body limit is ingest's default (DeclaredSizeLimit answers 413 as problem+json); the
    # model bounds a polygon to 20 rings of 5000 positions, parse_polygon to 5000 in all.
    router = APIRouter(prefix="/regions", tags=["regions"])

    def regions(state: Any) -> RegionStore:
        return RegionStore(state.pool)

    @router.get("", response_model=list[Region], responses=_ERRORS)
    async def list_regions(
        state: Admin, device_id: Annotated[str | None, Query(pattern=_ID)] = None
    ) -> list[Region]:
        """Every saved region; with `device_id`, those that apply to that device (its own
        and those of every device)."""
        return await regions(state).list(device_id)

    @router.post(
        "", response_model=Region, status_code=201,
        responses={**_ERRORS,
                   "404": {"description": "No such device.", "content": _CONTENT},
                   "409": {"description": "That region_id exists.", "content": _CONTENT}},
    )  # fmt: skip
    async def create_region(body: RegionIn, state: Admin) -> Region:
        """Save a region: a circle or a GeoJSON polygon, for one device or all."""
        return await regions(state).create(body)

    @router.get("/{region_id}", response_model=Region, responses=_NOT_FOUND)
    async def get_region(region_id: RegionId, state: Admin) -> Region:
        return await regions(state).get(region_id)

    @router.patch("/{region_id}", response_model=Region, responses=_NOT_FOUND)
    async def update_region(region_id: RegionId, body: RegionPatch, state: Admin) -> Region:
        """Change name, kind, device or shape."""
        return await regions(state).patch(region_id, body)

    @router.delete("/{region_id}", response_model=Region, responses=_NOT_FOUND)
    async def delete_region(region_id: RegionId, state: Admin) -> Region:
        """Delete the region; devices inside it get no exit event."""
        return await regions(state).delete(region_id)

    app.include_router(router)
