"""When to send again and how long to wait: written once for the sync and async clients.

The client's exchanges are *plans*: generators that yield what to do next — a
:class:`Call` (an HTTP request) or a :class:`Sleep` — and receive the answer (an
``httpx.Response``, or the ``httpx.TransportError`` that replaced it). :func:`run`
carries a plan out with ``httpx.Client`` and :func:`arun` with ``httpx.AsyncClient``;
the decisions (which answers are retried, backoff, ``Retry-After``) live only here.

Retried: connection errors and timeouts, 408, 429 and every 5xx, with exponential
backoff and jitter, never sooner than a ``Retry-After`` asks. Any other 4xx is the
caller's to fix and is never sent again.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import httpx

from loom.client.errors import Unavailable, problem_of

__all__ = [
    "Call",
    "Exchanged",
    "Plan",
    "RetryPolicy",
    "Sleep",
    "arun",
    "exchange",
    "parse_retry_after",
    "retryable_status",
    "run",
]

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try. The wait before try ``n + 1`` is ``base_seconds * 2**(n-1)``
    capped at ``max_seconds``, of which a random half is taken off (jitter); a
    ``Retry-After`` longer than that is waited out in full, one longer than
    ``max_retry_after_seconds`` is not (the call fails with :class:`Unavailable`)."""

    attempts: int = 6
    base_seconds: float = 0.5
    max_seconds: float = 30.0
    max_retry_after_seconds: float = 300.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")

    def backoff(self, attempt: int) -> float:
        """The wait after failed try ``attempt`` (1-based), jittered."""
        ceiling = min(self.max_seconds, self.base_seconds * 2 ** max(0, attempt - 1))
        return float(ceiling / 2 + random.uniform(0, ceiling / 2))

    def delay(self, attempt: int, retry_after: float | None) -> float | None:
        """The wait before the next try, or ``None`` to give up."""
        if attempt >= self.attempts:
            return None
        if retry_after is not None and retry_after > self.max_retry_after_seconds:
            return None
        return max(self.backoff(attempt), retry_after or 0.0)


def retryable_status(status: int) -> bool:
    return status in (408, 429) or status >= 500


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds: a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


@dataclass(frozen=True)
class Call:
    """One HTTP request of a plan; ``timeout`` overrides the client's (long polls)."""

    method: str
    path: str
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    timeout: float | None = None


@dataclass(frozen=True)
class Sleep:
    seconds: float


Reply = httpx.Response | httpx.TransportError | None
Plan = Generator[Call | Sleep, Reply, T]


@dataclass(frozen=True)
class Exchanged:
    """The final answer of an exchange and how many tries it took."""

    response: httpx.Response
    attempts: int


def exchange(call: Call, policy: RetryPolicy) -> Plan[Exchanged]:
    """Send ``call`` until it gets an answer that is not worth retrying; that answer is
    returned (2xx, 3xx, or a 4xx for the caller). Raises :class:`Unavailable` when the
    tries are used up."""
    attempt = 0
    while True:
        reply = yield call
        attempt += 1
        if isinstance(reply, httpx.Response):
            if not retryable_status(reply.status_code):
                return Exchanged(reply, attempt)
            retry_after = parse_retry_after(reply.headers.get("retry-after"))
            problem = problem_of(reply)
            reason = f"{reply.status_code} {problem.get('detail') or reply.reason_phrase}"
            status: int | None = reply.status_code
        else:
            retry_after, status = None, None
            reason = f"{type(reply).__name__}: {reply}" if reply else "no answer"
        wait = policy.delay(attempt, retry_after)
        if wait is None:
            raise Unavailable(reason, attempts=attempt, status=status, retry_after=retry_after)
        yield Sleep(wait)


def _request(call: Call) -> dict[str, Any]:
    request: dict[str, Any] = {"headers": call.headers, "params": call.params or None}
    if call.content is not None:
        request["content"] = call.content
    if call.timeout is not None:
        request["timeout"] = call.timeout
    return request


async def _carry(
    plan: Plan[T],
    request: Callable[[Call], Awaitable[httpx.Response]],
    sleep: Callable[[float], Awaitable[None]],
) -> T:
    """Carry ``plan`` out: each :class:`Call` through ``request``, each :class:`Sleep`
    through ``sleep``; a transport error is handed to the plan as its answer."""
    reply: Reply = None
    while True:
        try:
            step = plan.send(reply)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        reply = None
        if isinstance(step, Sleep):
            await sleep(step.seconds)
            continue
        try:
            reply = await request(step)
        except httpx.TransportError as exc:
            reply = exc


def run(plan: Plan[T], http: httpx.Client, sleep: Callable[[float], None] = time.sleep) -> T:
    """Carry ``plan`` out with a sync ``httpx.Client``.

    The steps are those of :func:`arun`; here nothing they await ever suspends, so
    the coroutine finishes in one ``send``, without an event loop."""

    async def request(call: Call) -> httpx.Response:
        return http.request(call.method, call.path, **_request(call))  # noqa: ASYNC212 - no loop runs it

    async def pause(seconds: float) -> None:
        sleep(seconds)

    carried = _carry(plan, request, pause)
    try:
        carried.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    carried.close()
    raise RuntimeError("a sync plan suspended: nothing run() awaits may yield to a loop")


async def arun(plan: Plan[T], http: httpx.AsyncClient) -> T:
    """Carry ``plan`` out with an ``httpx.AsyncClient``."""

    def request(call: Call) -> Awaitable[httpx.Response]:
        return http.request(call.method, call.path, **_request(call))

    return await _carry(plan, request, asyncio.sleep)
