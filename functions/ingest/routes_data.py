"""Stored events back out: pages of a type, exports and deleting a device's data.

A device's token reads that device's events; the admin token reads everything and
alone may export or delete. The queries are :mod:`loom.store.query`'s; this module
adds auth, HTTP parameters and the problem+json answers of its errors.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from typing import Annotated, Any

import orjson
import psycopg
from fastapi import APIRouter, FastAPI, Path, Query, Request
from fastapi.responses import Response, StreamingResponse
from psycopg import AsyncConnection
from psycopg_pool import PoolTimeout
from pydantic import BaseModel, Field

from functions.ingest.auth import Principal
from functions.ingest.openapi import PROBLEM_RESPONSES
from functions.ingest.problems import (
    BadRequest,
    Forbidden,
    NotFound,
    ServiceUnavailable,
    TooManyRequests,
)
from functions.ingest.state import Admin, IngestState, log
from functions.ingest.state import ingest_state as _state
from loom.store.export import MEDIA_TYPES, Format, encode
from loom.store.query import DEFAULT_LIMIT, MAX_LIMIT, NotStored, QueryError, StoreReader

__all__ = [
    "MAX_EXPORTS",
    "DeletedData",
    "DeviceActivityReport",
    "EventPage",
    "add_data_routes",
    "stored_activity",
]

MAX_EXPORTS = 2  # at once: each holds one of the pool's connections while it streams
_PROBLEM = PROBLEM_RESPONSES["401"]["content"]
_EXAMPLE_TYPE = "device.sensor.gps.raw"


def _errors(*codes: str, **described: str) -> dict[int | str, dict[str, Any]]:
    """Problem answers: ``codes`` as documented everywhere, ``e404="…"`` described here."""
    found: dict[int | str, dict[str, Any]] = {code: PROBLEM_RESPONSES[code] for code in codes}
    for code, description in described.items():
        found[code.removeprefix("e")] = {"description": description, "content": _PROBLEM}
    return found


class StoredEvent(BaseModel):
    id: str
    source: str
    type: str
    device_id: str | None = Field(description="The device (the CloudEvent's partitionkey).")
    time: datetime = Field(description="When it happened (the CloudEvent's time).")
    received_at: datetime = Field(description="When ingest received it.")
    stored_at: datetime = Field(description="When the store committed it.")
    schema_version: str
    data: Any


class EventPage(BaseModel):
    items: list[StoredEvent] = Field(description="Oldest first: by time, then source, then id.")
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page."
    )


class TypeActivity(BaseModel):
    type: str
    count: int = Field(description="Events of this type the store holds.")
    last_event_at: datetime = Field(description="Time of the latest of them.")


class DeviceActivityReport(BaseModel):
    device_id: str
    name: str | None
    registered: bool = Field(description="False for data of a deleted or unknown device.")
    last_seen_at: datetime | None = Field(description="When ingest last took an event.")
    events_total: int = Field(description="Events ingest has taken from the device.")
    active: bool = Field(description="Ingest took an event in the last 5 minutes.")
    stored_events: int = Field(description="Events of the device the store holds.")
    last_event_at: datetime | None = Field(description="Time of the latest stored event.")
    types: list[TypeActivity] = Field(description="Stored events per type, latest first.")


class DeletedData(BaseModel):
    device_id: str
    deleted: dict[str, int] = Field(description="Rows deleted per table (tables that had some).")
    total: int


DeviceFilter = Annotated[
    str | None, Query(min_length=1, max_length=256, description="Only this device's events.")
]
From = Annotated[
    datetime | None,
    Query(alias="from", description="First time included (ISO 8601; UTC without offset)."),
]
To = Annotated[datetime | None, Query(alias="to", description="End time, not included.")]


@contextlib.contextmanager
def _problems() -> Iterator[None]:
    """The store's query errors as the answers the problems table has for them."""
    try:
        yield
    except NotStored as exc:
        raise NotFound(str(exc)) from exc
    except QueryError as exc:
        raise BadRequest(str(exc)) from exc


@contextlib.asynccontextmanager
async def _connection(state: IngestState) -> AsyncIterator[AsyncConnection[Any]]:
    try:
        async with state.read_pool.connection() as conn:
            yield conn
    except psycopg.errors.QueryCanceled as exc:
        limit = state.settings.ingest_read_timeout_seconds
        raise ServiceUnavailable(
            f"the query ran longer than {limit:g} s (LOOM_INGEST_READ_TIMEOUT_SECONDS): "
            "narrow it with from, to or device_id",
            retry_after=state.settings.ingest_retry_after_seconds,
        ) from exc
    except (PoolTimeout, psycopg.OperationalError) as exc:
        log.warning("ingest.store_unavailable", error=str(exc))
        raise ServiceUnavailable(
            "cannot read the store: database unavailable",
            retry_after=state.settings.ingest_retry_after_seconds,
        ) from exc


async def stored_activity(state: IngestState) -> dict[str | None, list[dict[str, Any]]]:
    """Per device: per type the number of stored events and the time of the last one."""
    with _problems():
        async with _connection(state) as conn:
            found = await StoreReader(state.catalog).activity(conn)
    by_device: dict[str | None, list[dict[str, Any]]] = {}
    for a in sorted(found, key=lambda a: a.last_time, reverse=True):
        entry = {"type": a.type, "count": a.count, "last_event_at": a.last_time}
        by_device.setdefault(a.device_id, []).append(entry)
    return by_device


def _readable_device(principal: Principal, device_id: str | None) -> str | None:
    """The device a request may read: any for the admin, only its own for a device."""
    if principal.is_admin:
        return device_id
    if device_id is not None and device_id != principal.device_id:
        raise Forbidden(
            f"this token reads only device {principal.device_id!r}'s events, not {device_id!r}"
        )
    return principal.device_id


def _filename(*parts: str | None) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", "-".join(p for p in parts if p))


def add_data_routes(app: FastAPI) -> None:
    router = APIRouter(tags=["data"])
    running = {"exports": 0}

    @router.get(
        "/events/{type}",
        response_model=EventPage,
        responses=_errors("401", "403", "503", e404="No such type, or it is not stored."),
    )
    async def read_events(
        request: Request,
        event_type: Annotated[
            str, Path(alias="type", description="A stored type.", examples=[_EXAMPLE_TYPE])
        ],
        device_id: DeviceFilter = None,
        start: From = None,
        end: To = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
        cursor: Annotated[
            str | None, Query(max_length=4096, description="`next_cursor` of the page before.")
        ] = None,
    ) -> Response:
        """Stored events of one type, oldest first, a page at a time.

        A device's token reads its own device (the default `device_id`); the admin
        token reads any device, or all when `device_id` is left out. The range is
        half-open: `from` <= time < `to`.
        """
        state = _state(request)
        principal = await state.principal(request)
        reader = StoreReader(state.catalog)
        with _problems():
            selection = reader.select(
                event_type,
                device_id=_readable_device(principal, device_id),
                start=start,
                end=end,
            )
            async with _connection(state) as conn:
                page = await reader.page(conn, selection, limit=limit, cursor=cursor)
        body = {"items": page.items, "next_cursor": page.next_cursor}
        return Response(orjson.dumps(body, option=orjson.OPT_UTC_Z), media_type="application/json")

    @router.get(
        "/admin/export",
        response_class=StreamingResponse,
        responses={
            200: {
                "description": "The file, streamed; `X-Total-Count` says how many events.",
                "content": {
                    MEDIA_TYPES["jsonl"]: {"schema": {"type": "string"}},
                    MEDIA_TYPES["parquet"]: {"schema": {"type": "string", "format": "binary"}},
                },
            },
            **_errors("401", "403", "503", e404="No such type, or it is not stored.",
                      e429=f"{MAX_EXPORTS} exports are running; see Retry-After."),
        },
    )  # fmt: skip
    async def export_events(
        state: Admin,
        event_type: Annotated[
            str, Query(alias="type", description="A stored type.", examples=[_EXAMPLE_TYPE])
        ],
        device_id: DeviceFilter = None,
        start: From = None,
        end: To = None,
        fmt: Annotated[
            Format,
            Query(alias="format", description="jsonl: CloudEvents, one a line; or parquet."),
        ] = "jsonl",
    ) -> StreamingResponse:
        """Every stored event of a type (of one device, in a time range), oldest first.

        JSON Lines of structured-mode CloudEvents, or Parquet (`data` as a JSON string).
        """
        reader = StoreReader(state.catalog)
        with _problems():
            selection = reader.select(event_type, device_id=device_id, start=start, end=end)
        if running["exports"] >= MAX_EXPORTS:
            raise TooManyRequests(
                f"{MAX_EXPORTS} exports are running; try again when one has finished",
                retry_after=state.settings.ingest_retry_after_seconds,
            )

        async def stream() -> AsyncIterator[int | bytes]:
            running["exports"] += 1
            try:
                async with _connection(state) as conn, reader.export(conn, selection) as export:
                    yield export.total
                    async for piece in encode(export.chunks(), fmt):
                        yield piece
            finally:
                running["exports"] -= 1

        # Started here, so a missing table or database is a problem answer, not a 200
        # with an empty body; the total goes in a header.
        pieces = stream()
        with _problems():
            total = await anext(pieces)

        async def body() -> AsyncIterator[bytes]:
            async for piece in pieces:
                assert isinstance(piece, bytes)
                yield piece

        name = _filename(event_type, device_id) + "." + fmt
        return StreamingResponse(
            body(),
            media_type=MEDIA_TYPES[fmt],
            headers={
                "Content-Disposition": f'attachment; filename="{name}"',
                "X-Total-Count": str(total),
            },
        )

    @router.delete(
        "/admin/devices/{device_id}/data",
        response_model=DeletedData,
        responses=_errors("401", "403", "503"),
    )
    async def delete_device_data(
        device_id: Annotated[str, Path(max_length=256)], state: Admin
    ) -> dict[str, Any]:
        """Delete every stored event of a device, from every table, in one transaction.

        The device stays registered (`DELETE /devices/{device_id}` revokes it); what it
        sends afterwards, or what Kafka still holds, is stored again. Media blobs stay.
        """
        with _problems():
            async with _connection(state) as conn:
                deleted = await StoreReader(state.catalog).delete_device(conn, device_id)
        return {"device_id": device_id, "deleted": deleted, "total": sum(deleted.values())}

    app.include_router(router)
