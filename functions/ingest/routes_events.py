"""Event routes: CloudEvents (binary, structured, batch) and the seed's REST family.

Every route ends in the same durable path: checks in :mod:`functions.ingest.accept`,
then the broker's ack before any 2xx.
"""

from __future__ import annotations

import contextlib
import uuid
from datetime import UTC, datetime
from typing import Any

from cloudevents.core.exceptions import BaseCloudEventException
from cloudevents.core.v1.event import CloudEvent
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse

from functions.ingest.accept import Accepted
from functions.ingest.auth import Principal
from functions.ingest.openapi import batch_openapi, cloudevent_openapi, rest_openapi
from functions.ingest.problems import BadRequest, problem
from functions.ingest.state import IngestState
from loom import cehttp
from loom.catalog import EventType
from loom.cehttp import read_body
from loom.errors import LoomError

__all__ = ["add_event_routes", "receive_cloudevents", "seed_event"]


def _state(request: Request) -> IngestState:
    state: IngestState = request.app.state.ingest
    return state


async def _deliver_one(state: IngestState, accepted: Accepted) -> None:
    (error,) = await state.deliver([accepted])
    if error is not None:
        raise error


def _outcome(index: int, event_id: str | None, error: Exception | None) -> dict[str, Any]:
    if error is None:
        return {"index": index, "id": event_id, "status": 202, "accepted": True}
    body = problem(error)
    return {
        "index": index,
        "id": event_id,
        "status": body["status"],
        "accepted": False,
        # Only these are worth sending again unchanged; 4xx will fail the same way.
        "retryable": body["status"] in (429, 503),
        "problem": body,
    }


async def _accept_many(
    state: IngestState, principal: Principal, items: list[Any], build: Any
) -> tuple[list[dict[str, Any]], int]:
    """Check each item on its own, deliver the good ones together, report every outcome."""
    outcomes: list[dict[str, Any] | None] = [None] * len(items)
    ready: list[tuple[int, Accepted]] = []
    seen: set[tuple[str, str]] = set()
    for index, item in enumerate(items):
        raw_id = item.get("id") if isinstance(item, dict) else None
        event_id = raw_id if isinstance(raw_id, str) else None
        try:
            accepted = state.acceptor.accept(build(index, item), principal)
            if (accepted.source, accepted.id) in seen:
                raise BadRequest(
                    f"event {accepted.id!r} from {accepted.source!r} is in the batch twice"
                )
            seen.add((accepted.source, accepted.id))
            event_id = accepted.id
            ready.append((index, accepted))
        except LoomError as exc:
            outcomes[index] = _outcome(index, event_id, exc)
            state.rejected(exc, item, outcomes[index]["status"])
    state.limiter.take(principal.device_id, len(ready))
    results = await state.deliver([a for _, a in ready])
    for (index, accepted), error in zip(ready, results, strict=True):
        outcomes[index] = _outcome(index, accepted.id, error)
    final = [o for o in outcomes if o is not None]
    accepted_count = sum(1 for o in final if o["accepted"])
    return final, accepted_count


def _batch_answer(results: list[dict[str, Any]], accepted: int, **extra: Any) -> JSONResponse:
    """202/201 when every event was taken; 207 with per-event outcomes otherwise."""
    body = {"accepted": accepted, "rejected": len(results) - accepted, "results": results, **extra}
    return JSONResponse(
        body, status_code=extra.pop("ok_status", 202) if accepted == len(results) else 207
    )


async def receive_cloudevents(request: Request) -> JSONResponse:
    state = _state(request)
    principal = await state.principal(request)
    headers = {k.lower(): v for k, v in request.headers.items()}
    mode = cehttp.detect_mode(headers)
    if mode == "batch":
        body = await read_body(request, state.settings.ingest_max_request_bytes)
        items = cehttp.parse_batch(body, state.settings.ingest_max_batch_events)
        results, accepted = await _accept_many(
            state, principal, items, lambda i, item: cehttp.event_from_json(item, f"event [{i}]")
        )
        body_out = {"accepted": accepted, "rejected": len(results) - accepted, "results": results}
        return JSONResponse(body_out, status_code=202 if accepted == len(results) else 207)
    if mode == "binary":
        limit = state.acceptor.event_type(cehttp.check_binary(headers)).max_bytes
        body = await read_body(request, limit)
        event = cehttp.parse_binary(headers, body)
        accepted_event = state.acceptor.accept(event, principal, raw=body)
    else:
        body = await read_body(request, state.largest_event)
        accepted_event = state.acceptor.accept(cehttp.parse_structured(body), principal)
    state.limiter.take(accepted_event.device_id)
    await _deliver_one(state, accepted_event)
    return JSONResponse(
        {
            "id": accepted_event.id,
            "type": accepted_event.type.type,
            "topic": accepted_event.record.topic,
        },
        status_code=202,
    )


# ── the seed's REST family ─────────────────────────────────────────────────


def seed_event(event_type: EventType, payload: Any, principal: Principal) -> CloudEvent:
    """A seed REST payload as a CloudEvent, with the seed's defaults filled in."""
    if not isinstance(payload, dict):
        raise BadRequest(f"the body of {event_type.rest_path} must be a JSON object")
    data = dict(payload)
    if principal.device_id is not None:
        data.setdefault("device_id", principal.device_id)
    data.setdefault("schema_version", "1.0")
    data.setdefault("message_id", str(uuid.uuid4()))
    data.setdefault("timestamp", datetime.now(UTC).isoformat())
    message_id, device_id = data["message_id"], data.get("device_id")
    device = device_id if isinstance(device_id, str) and device_id else "unknown"
    attributes: dict[str, Any] = {
        "specversion": "1.0",
        # A bad message_id or device_id is named by the schema check; the event still needs
        # a valid id and source to get that far.
        "id": message_id if isinstance(message_id, str) and message_id else str(uuid.uuid4()),
        "source": f"/devices/{device}",
        "type": event_type.type,
        "datacontenttype": "application/json",
    }
    with contextlib.suppress(ValueError):  # the schema check names a bad timestamp
        when = datetime.fromisoformat(str(data["timestamp"]).replace("Z", "+00:00"))
        if when.tzinfo is not None:  # a time without offset is left to the schema check
            attributes["time"] = when
    try:
        return CloudEvent(attributes, data)
    except BaseCloudEventException as exc:
        raise BadRequest(f"cannot make a CloudEvent of this payload: {exc}") from None


def _rest_route(event_type: EventType) -> Any:
    async def handler(request: Request) -> JSONResponse:
        state = _state(request)
        principal = await state.principal(request)
        body = await read_body(request, event_type.max_bytes)
        payload = cehttp.loads_json(body, "body")
        accepted = state.acceptor.accept(seed_event(event_type, payload, principal), principal)
        state.limiter.take(accepted.device_id)
        await _deliver_one(state, accepted)
        return JSONResponse(
            {"status": "success", "message_id": accepted.id, "id": accepted.id,
             "topic": accepted.record.topic, "timestamp": datetime.now(UTC).isoformat()},
            status_code=201,
        )  # fmt: skip

    handler.__name__ = f"post_{event_type.type.replace('.', '_')}"
    return handler


def _sensor_batch_route(state_catalog_types: dict[str, EventType], generic: EventType) -> Any:
    async def sensor_batch(request: Request) -> JSONResponse:
        state = _state(request)
        principal = await state.principal(request)
        body = await read_body(request, state.settings.ingest_max_request_bytes)
        readings = cehttp.loads_json(body, "body")
        if not isinstance(readings, list) or not readings:
            raise BadRequest("the body must be a non-empty JSON array of sensor readings")
        if len(readings) > state.settings.ingest_max_batch_events:
            raise BadRequest(
                f"{len(readings)} readings; at most {state.settings.ingest_max_batch_events}"
            )

        def build(index: int, reading: Any) -> CloudEvent:
            if not isinstance(reading, dict):
                raise BadRequest(f"reading [{index}] must be a JSON object")
            target = state_catalog_types.get(str(reading.get("sensor_type")), generic)
            if target is not generic and isinstance(reading.get("value"), dict):
                common = {
                    k: v for k, v in reading.items() if k not in ("value", "sensor_type", "unit")
                }
                reading = {**common, **reading["value"]}
            return seed_event(target, reading, principal)

        results, accepted = await _accept_many(state, principal, readings, build)
        status = 201 if accepted == len(results) else 207
        return JSONResponse(
            {"status": "success" if status == 201 else "partial", "total": len(results),
             "processed": accepted, "failed": len(results) - accepted, "results": results},
            status_code=status,
        )  # fmt: skip

    return sensor_batch


def add_event_routes(app: FastAPI, state: IngestState) -> None:
    router = APIRouter()
    for path in ("/", "/events"):
        router.add_api_route(
            path, receive_cloudevents, methods=["POST"], status_code=202, tags=["cloudevents"],
            summary="Post CloudEvents (binary, structured or batched mode)",
            openapi_extra=cloudevent_openapi(state.catalog), include_in_schema=path == "/",
            response_class=JSONResponse,
        )  # fmt: skip
    sensors: dict[str, EventType] = {}
    for event_type in state.catalog.ingestable():
        if event_type.rest_path is None:
            continue
        if event_type.rest_path.startswith("/sensor/"):
            sensors[event_type.rest_path.removeprefix("/sensor/")] = event_type
        router.add_api_route(
            event_type.rest_path, _rest_route(event_type), methods=["POST"], status_code=201,
            tags=[event_type.rest_path.split("/")[1]], summary=event_type.description,
            openapi_extra=rest_openapi(state.catalog, event_type), response_class=JSONResponse,
        )  # fmt: skip
    generic = sensors.pop("generic")
    router.add_api_route(
        "/sensor/batch", _sensor_batch_route(sensors, generic), methods=["POST"], status_code=201,
        tags=["sensor"], summary="Post many sensor readings; each goes to its sensor's type",
        openapi_extra=batch_openapi(), response_class=JSONResponse,
    )  # fmt: skip
    app.include_router(router)
