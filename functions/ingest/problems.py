"""Every error the ingest service answers, as RFC 9457 problem+json from one table."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from loom.errors import BodyTooLarge, LoomError, MalformedEvent, UnknownEventTypeError

__all__ = [
    "BadRequest",
    "Conflict",
    "Forbidden",
    "IngestError",
    "InvalidData",
    "NotFound",
    "ServiceUnavailable",
    "TooLarge",
    "TooManyRequests",
    "Unauthorized",
    "problem_response",
]

PROBLEM_JSON = "application/problem+json"
_BASE = "https://loom.dev/problems/"


class IngestError(LoomError):
    """An error with an HTTP answer; ``extra`` members go into the problem document."""

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class BadRequest(IngestError):
    """Malformed request: not a CloudEvent, broken JSON, wrong content type."""


class InvalidData(IngestError):
    """``data`` breaks its type's JSON Schema; ``errors`` lists pointer + message."""


class Unauthorized(IngestError):
    """No token, or a token that is unknown or revoked."""


class Forbidden(IngestError):
    """A valid token that may not do this (another device's events, admin routes)."""


class NotFound(IngestError):
    """No such device."""


class Conflict(IngestError):
    """A device with that id exists already."""


class TooLarge(IngestError):
    """A body or an event's data over its limit."""


class TooManyRequests(IngestError):
    """The device's rate limit is used up; retry after ``retry_after`` seconds."""


class ServiceUnavailable(IngestError):
    """Kafka (or the database) cannot take the write now; retry after ``retry_after``."""


# status, slug, title — the one mapping from error class to answer.
PROBLEMS: dict[type[Exception], tuple[int, str, str]] = {
    BadRequest: (400, "bad-request", "Bad request"),
    MalformedEvent: (400, "bad-request", "Bad request"),
    UnknownEventTypeError: (400, "unknown-type", "Unknown event type"),
    Unauthorized: (401, "unauthorized", "Missing or invalid token"),
    Forbidden: (403, "forbidden", "Not allowed with this token"),
    NotFound: (404, "not-found", "Not found"),
    Conflict: (409, "conflict", "Already exists"),
    TooLarge: (413, "too-large", "Content too large"),
    BodyTooLarge: (413, "too-large", "Content too large"),
    InvalidData: (422, "invalid-data", "Event data does not match its schema"),
    TooManyRequests: (429, "rate-limited", "Too many requests"),
    ServiceUnavailable: (503, "unavailable", "Cannot store events right now"),
}


def classify(exc: Exception) -> tuple[int, str, str]:
    for cls in type(exc).__mro__:
        if cls in PROBLEMS:
            return PROBLEMS[cls]
    return 500, "internal", "Internal error"


def problem(exc: Exception, instance: str | None = None) -> dict[str, Any]:
    """The problem document of ``exc`` (without the HTTP envelope)."""
    status, slug, title = classify(exc)
    detail = exc.detail if isinstance(exc, IngestError) else str(exc)
    body: dict[str, Any] = {"type": _BASE + slug, "title": title, "status": status}
    body["detail"] = detail if status < 500 or isinstance(exc, IngestError) else "unexpected error"
    if instance:
        body["instance"] = instance
    body.update(getattr(exc, "extra", {}))
    return body


def problem_response(exc: Exception, request: Request | None = None) -> JSONResponse:
    body = problem(exc, request.url.path if request is not None else None)
    headers = {}
    if "retry_after" in body:
        headers["Retry-After"] = str(int(body["retry_after"]))
    return JSONResponse(body, status_code=body["status"], media_type=PROBLEM_JSON, headers=headers)
