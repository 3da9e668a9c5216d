"""A small real HTTP server that answers as ingest does, for the client's unit tests.

It runs under uvicorn in a thread on 127.0.0.1, records every request, and answers
from a script first (``answer(...)``), then like ingest: 202 for an event, a
batch 202 or 207 with one result per event. An event whose data has a latitude
over 90 is refused 422 with a problem+json naming the pointer, as the schema
check would; a request body over ``max_request_bytes`` (when set) is refused 413 as
a whole, as ingest's body limit does.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

PROBLEM = "application/problem+json"


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class FakeIngest:
    url: str = ""
    requests: list[Seen] = field(default_factory=list)
    script: deque[tuple[int, Any, dict[str, str]]] = field(default_factory=deque)
    commands: list[dict[str, Any]] = field(default_factory=list)
    acked: list[str] = field(default_factory=list)
    max_request_bytes: int | None = None

    def answer(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        """The next request gets this answer instead of the ingest-like one."""
        self.script.append((status, body, headers or {}))

    def events(self) -> list[dict[str, Any]]:
        """Every event posted, in the order received (batches unrolled)."""
        out: list[dict[str, Any]] = []
        for seen in self.requests:
            if seen.path != "/":
                continue
            body = seen.json()
            out.extend(body if isinstance(body, list) else [body])
        return out


def problem(status: int, detail: str, **extra: Any) -> dict[str, Any]:
    return {"type": "about:blank", "title": "refused", "status": status, "detail": detail, **extra}


def _verdict(event: dict[str, Any]) -> dict[str, Any] | None:
    data = event.get("data")
    latitude = data.get("latitude") if isinstance(data, dict) else None
    if isinstance(latitude, int | float) and latitude > 90:
        return problem(
            422,
            "1 problem(s) in data, first at '/latitude': 99 is greater than the maximum of 90",
            errors=[{"pointer": "/latitude", "message": "99 is greater than the maximum of 90"}],
        )
    return None


def _app(fake: FakeIngest) -> Starlette:
    async def record(request: Request) -> Response | None:
        body = await request.body()
        fake.requests.append(
            Seen(request.method, request.url.path, dict(request.headers), body, time.monotonic())
        )
        if fake.script:
            status, answer, headers = fake.script.popleft()
            media = PROBLEM if status >= 400 else "application/json"
            return JSONResponse(answer, status_code=status, headers=headers, media_type=media)
        return None

    async def post_events(request: Request) -> Response:
        scripted = await record(request)
        if scripted is not None:
            return scripted
        raw = fake.requests[-1].body
        if fake.max_request_bytes is not None and len(raw) > fake.max_request_bytes:
            limit = fake.max_request_bytes
            refused = problem(413, f"body is over the limit of {limit} bytes", limit=limit)
            return JSONResponse(refused, status_code=413, media_type=PROBLEM)
        body = json.loads(raw)
        if request.headers["content-type"] != "application/cloudevents-batch+json":
            refused = _verdict(body)
            if refused:
                return JSONResponse(refused, status_code=422, media_type=PROBLEM)
            return JSONResponse(
                {"id": body["id"], "type": body["type"], "topic": body["type"]}, 202
            )
        results = []
        for index, event in enumerate(body):
            refused = _verdict(event)
            results.append(
                {"index": index, "id": event["id"], "status": 202, "accepted": True}
                if refused is None
                else {"index": index, "id": event["id"], "status": 422, "accepted": False,
                      "retryable": False, "problem": refused}
            )  # fmt: skip
        accepted = sum(1 for r in results if r["accepted"])
        answer = {"accepted": accepted, "rejected": len(results) - accepted, "results": results}
        return JSONResponse(answer, status_code=202 if accepted == len(results) else 207)

    async def next_commands(request: Request) -> Response:
        scripted = await record(request)
        if scripted is not None:
            return scripted
        waiting = [c for c in fake.commands if c["command_id"] not in fake.acked]
        return JSONResponse({"commands": waiting}) if waiting else Response(status_code=204)

    async def ack(request: Request) -> Response:
        scripted = await record(request)
        if scripted is not None:
            return scripted
        fake.acked.append(request.path_params["command_id"])
        return Response(status_code=204)

    return Starlette(
        routes=[
            Route("/", post_events, methods=["POST"]),
            Route("/devices/{device_id}/commands/next", next_commands, methods=["GET"]),
            Route("/devices/{device_id}/commands/{command_id}/ack", ack, methods=["POST"]),
        ]
    )


def closed_port() -> int:
    """A port nothing listens on (for now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@contextmanager
def running(port: int = 0) -> Iterator[FakeIngest]:
    """A :class:`FakeIngest` serving on ``port`` (any free one if 0)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    fake = FakeIngest(url=f"http://127.0.0.1:{sock.getsockname()[1]}")
    server = uvicorn.Server(uvicorn.Config(_app(fake), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the fake ingest did not start"
        time.sleep(0.01)
    try:
        yield fake
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
