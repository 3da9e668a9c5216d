"""The request-size limit every route has, answered as problem+json before the body is read."""

from __future__ import annotations

from typing import Any

from functions.ingest.problems import TooLarge, problem

__all__ = ["DEVICE_BODY_LIMIT", "DeclaredSizeLimit"]

DEVICE_BODY_LIMIT = 64 * 1024  # a device record with generous metadata


class DeclaredSizeLimit:
    """Refuses a request whose Content-Length is over its route's limit with a 413 problem.

    Event routes also check their type's (smaller) limit as they read; a body sent without
    Content-Length is cut off by the framework's own streaming limit.
    """

    def __init__(self, app: Any, default_limit: int) -> None:
        self.app = app
        self.default_limit = default_limit

    def limit(self, path: str) -> int:
        # A command may carry a file or audio: its route has its type's limit instead.
        if path.startswith("/devices") and not path.endswith("/commands"):
            return DEVICE_BODY_LIMIT
        return self.default_limit

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            limit = self.limit(scope["path"])
            for name, value in scope["headers"]:
                if name == b"content-length" and value.isdigit() and int(value) > limit:
                    await _send_problem(send, TooLarge(
                        f"body of {int(value)} bytes is over the limit of {limit}",
                        limit_bytes=limit), scope["path"])  # fmt: skip
                    return
        await self.app(scope, receive, send)


async def _send_problem(send: Any, exc: Exception, path: str) -> None:
    import orjson

    body = orjson.dumps(problem(exc, path))
    await send({
        "type": "http.response.start",
        "status": 413,
        "headers": [(b"content-type", b"application/problem+json"),
                    (b"content-length", str(len(body)).encode()), (b"connection", b"close")],
    })  # fmt: skip
    await send({"type": "http.response.body", "body": body})
