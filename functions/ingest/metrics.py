"""Prometheus metrics of the ingest service, in a registry of its own per app."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.requests import Request

__all__ = ["IngestMetrics", "MetricsMiddleware"]

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)


@dataclass
class IngestMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.http_requests = Counter(
            "http_requests_total", "HTTP requests.", ["method", "endpoint", "status"], registry=r
        )
        self.http_duration = Histogram(
            "http_request_duration_seconds", "HTTP request latency.", ["method", "endpoint"],
            buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.websocket_connections = Counter(
            "websocket_connections_total", "WebSocket connections accepted.", registry=r
        )
        self.websocket_open = Gauge(
            "loom_ingest_websocket_connections", "WebSocket connections open now.", registry=r
        )
        self.kafka_sent = Counter(
            "kafka_messages_sent_total", "Events the broker acknowledged.", ["topic"], registry=r
        )
        self.events = Counter(
            "loom_ingest_events_total", "Events by outcome.", ["type", "outcome"], registry=r
        )
        self.produce_seconds = Histogram(
            "loom_ingest_produce_seconds", "Time from produce to broker ack.",
            buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.commands = Counter(
            "loom_ingest_commands_total", "Commands issued through the admin API, by type and "
            "outcome (queued, forbidden, unavailable).", ["type", "outcome"], registry=r,
        )  # fmt: skip
        self.command_deliveries = Counter(
            "loom_ingest_command_deliveries_total", "Commands sent to devices (resends included), "
            "by channel (websocket, longpoll).", ["channel"], registry=r,
        )  # fmt: skip
        self.command_acks = Counter(
            "loom_ingest_command_acks_total", "Acks of commands from devices, by channel.",
            ["channel"], registry=r,
        )  # fmt: skip


class MetricsMiddleware:
    """Counts and times every HTTP request by method, route template and status."""

    def __init__(self, app: Any, metrics: IngestMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def send_wrapper(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or "(unmatched)"
            method = scope["method"]
            self.metrics.http_requests.labels(method, endpoint, str(status[0])).inc()
            self.metrics.http_duration.labels(method, endpoint).observe(
                time.perf_counter() - started
            )


class EventsFastPath:
    """Sends ``POST /`` and ``POST /events`` (the hot path) straight to their handler.

    The framework's router, dependency machinery and exit stacks cost more than the
    handler itself for a small event; the route stays registered for the OpenAPI
    document, and errors map to problem+json exactly as on every other route.
    """

    def __init__(self, app: Any, handler: Any, on_error: Any, metrics: IngestMetrics) -> None:
        self.app = app
        self.handler = handler
        self.on_error = on_error
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path")
        if scope["type"] != "http" or scope["method"] != "POST" or path not in ("/", "/events"):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request = Request(scope, receive)
        try:
            response = await self.handler(request)
        except Exception as exc:  # noqa: BLE001 - every error becomes its problem+json answer
            response = self.on_error(exc, request)
        await response(scope, receive, send)
        self.metrics.http_requests.labels("POST", path, str(response.status_code)).inc()
        self.metrics.http_duration.labels("POST", path).observe(time.perf_counter() - started)
