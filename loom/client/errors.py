"""What the device client raises: a small tree under :class:`~loom.errors.LoomError`.

- :class:`Rejected`: ingest refused for good (a 4xx other than 408 and 429); sending
  the same thing again would fail the same way. Carries the RFC 9457 problem
  document: ``detail`` and, for schema violations, ``errors`` (pointer + message).
- :class:`Unavailable`: ingest could not be reached, or kept answering 5xx/408/429,
  after every retry. Nothing queued is lost: it stays queued.
- :class:`QueueFull`: the on-disk queue holds its limit of events.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx

from loom.errors import LoomError

if TYPE_CHECKING:
    from loom.client.events import BatchResult

__all__ = ["ClientError", "QueueFull", "Rejected", "Unavailable", "problem_of"]


class ClientError(LoomError):
    """Root of the device client's errors."""


def problem_of(response: httpx.Response) -> dict[str, Any]:
    """The problem+json document of an answer, or one made up from its status and text."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        return body
    text = response.text.strip()[:500]
    return {
        "title": response.reason_phrase or f"HTTP {response.status_code}",
        "status": response.status_code,
        "detail": text or response.reason_phrase or f"HTTP {response.status_code}",
    }


class Rejected(ClientError):
    """Ingest refused a request or an event for good; ``problem`` is its problem+json."""

    def __init__(
        self, status: int, problem: dict[str, Any], *, event_id: str | None = None
    ) -> None:
        self.status = status
        self.problem = problem
        self.event_id = event_id
        self.detail = str(problem.get("detail") or problem.get("title") or f"HTTP {status}")
        raw_errors = problem.get("errors")
        self.errors: list[dict[str, Any]] = (
            [e for e in raw_errors if isinstance(e, dict)] if isinstance(raw_errors, list) else []
        )
        message = f"ingest answered {status}: {self.detail}"
        if event_id:
            message = f"event {event_id!r}: {message}"
        for error in self.errors[:5]:
            message += f"\n  {error.get('pointer') or '/'}: {error.get('message')}"
        super().__init__(message)


class Unavailable(ClientError):
    """Ingest could not take the request after ``attempts`` tries.

    ``status`` is the last answer's status (``None`` when there was no answer, e.g. a
    refused connection), ``retry_after`` what it asked to wait, ``result`` the
    outcome of the events of a batch decided before giving up (if any).
    """

    def __init__(
        self,
        reason: str,
        *,
        attempts: int,
        status: int | None = None,
        retry_after: float | None = None,
        result: BatchResult | None = None,
    ) -> None:
        self.reason = reason
        self.attempts = attempts
        self.status = status
        self.retry_after = retry_after
        self.result = result
        tries = f"{attempts} attempt{'s' if attempts != 1 else ''}"
        super().__init__(f"ingest unavailable after {tries}: {reason}")


class QueueFull(ClientError):
    """The on-disk queue holds its limit of events; flush it (or allow more) first."""
