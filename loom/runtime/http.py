"""A function as a Knative Service: CloudEvents in over HTTP, the reply event out.

- ``POST /`` takes one CloudEvent (binary or structured mode). The first event the
  handler makes is the reply, in binary mode (Knative routes it back to the Broker);
  any further ones are POSTed to ``K_SINK``. Nothing made: ``202`` with no body.
- Poison (not a CloudEvent, a type it does not consume, invalid data): ``4xx``
  problem+json, which Knative does not retry and sends to the dead-letter sink.
- A failing handler, an invalid output or an unreachable ``K_SINK``: ``503`` with
  ``Retry-After``, which Knative retries with backoff (problem type ``unavailable``
  when a dependency of the handler is down rather than the handler failing). Derived event ids are
  deterministic, so a retry repeats the same ids and stores drop the repeats.
- ``/healthz``, ``/readyz``, ``/metrics``.

Starlette, not FastAPI: a function's start-up time is its cold start.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from loom import cehttp
from loom.catalog import Catalog
from loom.errors import BodyTooLarge, LoomError, MalformedEvent
from loom.events import to_http_binary
from loom.kafka.config import MAX_MESSAGE_BYTES
from loom.runtime.event import Event
from loom.runtime.invoke import BadOutput, HandlerFailed, PoisonEvent, Unavailable, invoke
from loom.runtime.model_client import open_model_clients
from loom.runtime.registry import FunctionSpec
from loom.settings import LoomSettings

__all__ = ["create_function_app"]

PROBLEM = "application/problem+json"
RETRY_AFTER = "5"


def _problem(status: int, slug: str, detail: str, **extra: Any) -> JSONResponse:
    body = {"type": f"https://loom.dev/problems/{slug}", "title": slug.replace("-", " "),
            "status": status, "detail": detail, **extra}  # fmt: skip
    headers = {"Retry-After": RETRY_AFTER} if status in (429, 503) else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _binary(event: Event, catalog: Catalog) -> tuple[dict[str, str], bytes]:
    """HTTP binary mode of ``event``: ``ce-*`` headers and the JSON data as body."""
    return to_http_binary(event.to_cloudevent(catalog[event.type].schema_id))


def create_function_app(
    spec: FunctionSpec,
    *,
    catalog: Catalog,
    settings: LoomSettings,
    models: Mapping[str, Any] | None = None,
    sink: str | None = None,
) -> Starlette:
    spec.check(catalog)
    sink = sink if sink is not None else os.environ.get("K_SINK")
    registry = CollectorRegistry()
    events = Counter("loom_function_events_total", "Events handled, by outcome.",
                     ["function", "outcome"], registry=registry)  # fmt: skip
    seconds = Histogram("loom_function_handle_seconds", "Time in the handler.", ["function"],
                        registry=registry)  # fmt: skip
    client: Any = None
    state: Any = None

    async def forward(extra: list[Event]) -> None:
        nonlocal client
        if not extra:
            return
        if not sink:
            raise HandlerFailed(f"{len(extra)} more event(s) to send, but K_SINK is not set")
        import httpx  # only functions that make several events pay for the import

        client = client or httpx.AsyncClient(timeout=10)
        for event in extra:
            headers, body = _binary(event, catalog)
            try:
                answer = await client.post(sink, headers=headers, content=body)
            except httpx.HTTPError as exc:
                raise HandlerFailed(f"K_SINK {sink} unreachable: {exc}") from exc
            if answer.status_code >= 300:
                raise HandlerFailed(f"K_SINK {sink} answered {answer.status_code}")

    async def receive(request: Request) -> Response:
        started = time.perf_counter()
        try:
            headers = {k.lower(): v for k, v in request.headers.items()}
            body = await cehttp.read_body(request, MAX_MESSAGE_BYTES)
            mode = cehttp.detect_mode(headers)
            if mode == "batch":
                raise MalformedEvent("a function takes one event per request, not a batch")
            parsed = (
                cehttp.parse_binary(headers, body)
                if mode == "binary"
                else cehttp.parse_structured(body)
            )
            made = await invoke(spec, Event.from_cloudevent(parsed), catalog=catalog,
                                settings=settings, models=models, state=state)  # fmt: skip
            await forward(made[1:])
        except MalformedEvent as exc:
            events.labels(spec.name, "poison").inc()
            return _problem(400, "bad-request", str(exc))
        except BodyTooLarge as exc:
            events.labels(spec.name, "poison").inc()
            return _problem(413, "too-large", str(exc), **exc.extra)
        except PoisonEvent as exc:
            events.labels(spec.name, "poison").inc()
            return _problem(422, "poison", str(exc), errors=exc.errors)
        except Unavailable as exc:
            events.labels(spec.name, "failed").inc()
            return _problem(503, "unavailable", str(exc))
        except (HandlerFailed, BadOutput) as exc:
            events.labels(spec.name, "failed").inc()
            return _problem(503, "handler-failed", str(exc))
        except LoomError as exc:
            events.labels(spec.name, "poison").inc()
            return _problem(400, "bad-request", str(exc))
        finally:
            seconds.labels(spec.name).observe(time.perf_counter() - started)
        events.labels(spec.name, "ok").inc()
        if not made:
            return Response(status_code=202)
        reply_headers, reply_body = _binary(made[0], catalog)
        return Response(reply_body, status_code=200, headers=reply_headers)

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok", "function": spec.name})

    async def metrics(_: Request) -> Response:
        # The host's own metrics, then the process-wide ones (process, and what the
        # function's own modules register, e.g. the store's loom_store_*).
        body = generate_latest(registry) + generate_latest(REGISTRY)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        nonlocal state, client, models
        async with AsyncExitStack() as resources:
            if spec.models and not models:
                models = await resources.enter_async_context(
                    open_model_clients(spec.models, settings)
                )
            if spec.lifespan is not None:
                state = await resources.enter_async_context(spec.lifespan(settings))
            yield
        if client is not None:
            await client.aclose()

    return Starlette(lifespan=lifespan, routes=[
        Route("/", receive, methods=["POST"]),
        Route("/healthz", healthz), Route("/readyz", healthz), Route("/metrics", metrics),
    ])  # fmt: skip
