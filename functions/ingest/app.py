"""The ingest service: the front door devices talk to (a Knative Service).

``create_app()`` builds the ASGI app; ``loom serve ingest`` runs it with uvicorn.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from psycopg_pool import AsyncConnectionPool
from starlette.exceptions import HTTPException as StarletteHTTPException

from functions.ingest.command_stream import add_command_stream
from functions.ingest.limits import DeclaredSizeLimit
from functions.ingest.metrics import EventsFastPath, MetricsMiddleware
from functions.ingest.openapi import finalize_openapi
from functions.ingest.problems import PROBLEM_JSON, problem_response
from functions.ingest.routes_commands import add_command_routes
from functions.ingest.routes_data import add_data_routes
from functions.ingest.routes_devices import add_device_routes
from functions.ingest.routes_events import add_event_routes, receive_cloudevents
from functions.ingest.routes_regions import add_region_routes
from functions.ingest.settings import IngestSettings
from functions.ingest.state import IngestState, log
from functions.ingest.websocket import add_audio_stream
from loom.catalog import Catalog, default_catalog
from loom.errors import LoomError
from loom.kafka import AsyncProducer
from loom.logging import configure_logging
from loom.settings import load_settings

__all__ = ["create_app"]

DESCRIPTION = """\
Devices post what they sense as CloudEvents 1.0 (`POST /`, binary, structured or
batched mode) or in the seed's REST shapes (`/sensor/*`, `/os-events/*`,
`/system/*`, `/audio/*`). Every write needs `Authorization: Bearer <token>`: the
admin token manages devices and issues commands to them, a device's token sends that
device's events and receives its commands (`/devices/{id}/commands/stream`, a
WebSocket, or `/devices/{id}/commands/next`, a long-poll). A 2xx answer means Kafka has
the event. Errors are RFC 9457 `application/problem+json`.
"""


def create_app(settings: IngestSettings | None = None, catalog: Catalog | None = None) -> FastAPI:
    settings = settings or load_settings(IngestSettings)
    catalog = catalog or default_catalog()
    read_timeout_ms = round(settings.ingest_read_timeout_seconds * 1000)
    state = IngestState(
        settings=settings,
        catalog=catalog,
        producer=AsyncProducer(
            settings,
            client_id="loom-ingest",
            delivery_timeout=settings.ingest_delivery_timeout_seconds,
            # A device waits for the ack: 1 ms of batching instead of 5 halves the
            # median latency at moderate rates and costs little throughput.
            **{"linger.ms": 1},
        ),
        pool=AsyncConnectionPool(
            settings.database_url,
            min_size=1,
            max_size=10,
            timeout=5.0,
            open=False,
            # a connection that broke while idle (PostgreSQL restarted) is replaced, not used
            check=AsyncConnectionPool.check_connection,
            kwargs={"connect_timeout": 3},
        ),
        read_pool=AsyncConnectionPool(
            settings.database_url,
            min_size=0,
            max_size=settings.ingest_read_connections,
            timeout=5.0,
            open=False,
            check=AsyncConnectionPool.check_connection,
            kwargs={
                "connect_timeout": 3,
                "options": f"-c statement_timeout={read_timeout_ms}",
            },
        ),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await state.start()
        log.info("ingest.started", kafka=settings.kafka_bootstrap_servers)
        try:
            yield
        finally:
            await state.stop()
            log.info("ingest.stopped")

    app = FastAPI(
        title="Loom ingest",
        version="1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        debug=settings.debug,
        # No app-wide body limit: event routes read with their type's limit, /devices has
        # its router's, DeclaredSizeLimit refuses what declares too much. An app-wide one
        # wraps every request and costs the hot path a tenth of its time.
    )
    app.state.ingest = state

    async def loom_error(request: Request, exc: Exception) -> Response:
        return _problem_or_log(exc, request)

    async def validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {"pointer": "/" + "/".join(str(p) for p in e["loc"][1:]), "message": e["msg"]}
            for e in exc.errors()
        ]
        body = {"type": "https://loom.dev/problems/invalid-request", "title": "Invalid request",
                "status": 422, "detail": errors[0]["message"] if errors else "invalid request",
                "instance": request.url.path, "errors": errors}  # fmt: skip
        return JSONResponse(body, status_code=422, media_type=PROBLEM_JSON)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        body = {"type": "about:blank", "title": str(exc.detail), "status": exc.status_code,
                "detail": str(exc.detail), "instance": request.url.path}  # fmt: skip
        return JSONResponse(body, status_code=exc.status_code, media_type=PROBLEM_JSON,
                            headers=getattr(exc, "headers", None))  # fmt: skip

    app.add_exception_handler(LoomError, loom_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, loom_error)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], responses={503: {"description": "Not ready; says why."}})
    async def readyz() -> JSONResponse:
        """Readiness: Kafka takes writes and the database is migrated and reachable."""
        checks = {"kafka": state.producer.status, "database": state.database_status}
        ready = all(v == "ok" for v in checks.values())
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "checks": checks},
            status_code=200 if ready else 503,
        )

    @app.get("/metrics", tags=["health"], response_class=Response)
    async def metrics() -> Response:
        """Prometheus metrics."""
        return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    add_event_routes(app, state)
    add_device_routes(app)
    add_region_routes(app)
    add_data_routes(app)
    add_audio_stream(app)
    add_command_routes(app, state)
    add_command_stream(app)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = finalize_openapi(FastAPI.openapi(app))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_middleware(MetricsMiddleware, metrics=state.metrics)
    app.add_middleware(
        EventsFastPath, handler=receive_cloudevents, on_error=_problem_or_log, metrics=state.metrics
    )
    app.add_middleware(DeclaredSizeLimit, default_limit=settings.ingest_max_request_bytes)
    return app


def _problem_or_log(exc: Exception, request: Request) -> Response:
    """The problem+json answer of ``exc``, logged: a refusal at info, a bug with its trace."""
    response = problem_response(exc, request)
    if isinstance(exc, LoomError):
        headers = request.headers
        log.info(
            "ingest.rejected",
            path=request.url.path,
            status=response.status_code,
            event_id=headers.get("ce-id"),
            type=headers.get("ce-type"),
            error=str(exc),
        )
    else:
        log.exception("ingest.unexpected_error", path=request.url.path, exc_info=exc)
    return response


def app_factory() -> Any:
    """For ``uvicorn --factory functions.ingest.app:app_factory``: JSON logs, then the app."""
    settings = load_settings(IngestSettings)
    configure_logging(settings.log_level)
    return create_app(settings)
