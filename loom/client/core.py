"""What the sync and async clients share: settings, event building and every exchange.

Each exchange is a plan (see :mod:`loom.client.retry`); :class:`~loom.client.LoomClient`
runs them with ``httpx.Client``, :class:`~loom.client.AsyncLoomClient` with
``httpx.AsyncClient``.

Ingest answers a single event 202 with its ``id`` and ``topic``; a batch 202 when it
took every event, else 207 with one result per event (``index``, ``id``, ``status``,
``accepted``, ``retryable``, ``problem``). Events of a 207 marked retryable are sent
again (alone) with backoff; the others are final. A batch refused as a whole with 400
or 413 is halved and sent again, so that one event too large (or malformed) for ingest
is refused alone and never holds back the others, nor the on-disk queue behind it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

import orjson

from loom.client.errors import ClientError, Rejected, Unavailable, problem_of
from loom.client.events import BatchResult, EventResult, FlushResult, chunks, complete_event
from loom.client.queue import EventQueue, Queued, default_queue_path
from loom.client.retry import Call, Plan, RetryPolicy, Sleep, exchange, parse_retry_after

__all__ = ["BATCH", "STRUCTURED", "ClientCore", "Command"]

STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
COMMAND_STATUS = "device.response.command.status"
# A batch refused as a whole with these is split: too large, or one event spoils it.
SPLIT_ON = frozenset({400, 413})

HttpT = TypeVar("HttpT")
TransportT = TypeVar("TransportT")


class Command:
    """A command sent to this device: ``command_id``, ``sequence`` and its ``event``
    (a structured-mode CloudEvent as a dict). Acknowledge it with ``await cmd.ack()``
    once handled (idempotent); see :meth:`AsyncLoomClient.commands`."""

    def __init__(
        self,
        command_id: str,
        sequence: int,
        event: dict[str, Any],
        ack: Callable[[], Awaitable[None]],
    ) -> None:
        self.command_id = command_id
        self.sequence = sequence
        self.event = event
        self.acked = False
        self._ack = ack

    @property
    def type(self) -> str:
        return str(self.event.get("type", ""))

    @property
    def data(self) -> Any:
        return self.event.get("data")

    async def ack(self) -> None:
        """Tell ingest the command is handled, so it is not sent again."""
        if not self.acked:
            self.acked = True
            await self._ack()

    def __repr__(self) -> str:
        return f"Command({self.command_id!r}, type={self.type!r}, sequence={self.sequence})"


def _result(index: int, item: Mapping[str, Any], fallback_id: str) -> EventResult:
    problem = item.get("problem")
    return EventResult(
        id=str(item.get("id") or fallback_id),
        status=int(item.get("status") or 0),
        accepted=bool(item.get("accepted")),
        index=index,
        retryable=bool(item.get("retryable")),
        problem=problem if isinstance(problem, dict) else None,
    )


class ClientCore(ABC, Generic[HttpT, TransportT]):
    """Settings, events, the queue and plans; the public clients add the I/O.

    ``transport`` (for tests) is handed to :meth:`connect`, which opens the client's
    ``http`` (an ``httpx.Client`` or ``httpx.AsyncClient``).
    """

    def __init__(
        self,
        url: str,
        token: str,
        *,
        device_id: str | None = None,
        source: str | None = None,
        queue_path: Path | str | None = None,
        queue_max_events: int = 100_000,
        timeout: float = 10.0,
        max_batch: int = 500,
        max_batch_bytes: int = 8 * 1024 * 1024,
        retry: RetryPolicy | None = None,
        transport: TransportT | None = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ClientError(f"the ingest URL must start with http:// or https://, not {url!r}")
        if not token:
            raise ClientError("a token is needed: the device's token (or the admin token)")
        if max_batch < 1:
            raise ClientError("max_batch must be at least 1")
        self.url = url.rstrip("/")
        self.device_id = device_id
        self.source = source
        self.timeout = timeout
        self.max_batch = max_batch
        self.max_batch_bytes = max_batch_bytes
        self.retry = retry or RetryPolicy()
        self.queue_path = Path(queue_path) if queue_path else default_queue_path(url, device_id)
        self.queue_max_events = queue_max_events
        self._queue: EventQueue | None = None
        self.headers = {"authorization": f"Bearer {token}", "user-agent": "loom-client/1"}
        self.http: HttpT = self.connect(transport)

    @abstractmethod
    def connect(self, transport: TransportT | None) -> HttpT:
        """The HTTP client every exchange goes through (``base_url``, ``headers`` and
        ``timeout`` from these settings)."""

    # ── events ───────────────────────────────────────────────────────────

    def event(
        self,
        type: str,
        data: Any = None,
        *,
        id: str | None = None,
        time: datetime | str | None = None,
        source: str | None = None,
        **extensions: Any,
    ) -> dict[str, Any]:
        """A complete structured-mode CloudEvent (id assigned now), ready to send or queue."""
        attributes = {"type": type, "id": id, "time": time, "source": source, **extensions}
        body = {k: v for k, v in attributes.items() if v is not None}
        if data is not None:
            body["data"] = data
        return self.complete(body)

    def complete(self, event: Mapping[str, Any]) -> dict[str, Any]:
        return complete_event(event, device_id=self.device_id, source=self.source)

    def response_event(
        self, command: Command | str, type: str, data: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        command_id = command if isinstance(command, str) else command.command_id
        body: dict[str, Any] = {"status": "succeeded", **(data or {}), "command_id": command_id}
        if isinstance(command, Command) and command.type and type == COMMAND_STATUS:
            body.setdefault("command_type", command.type)
        return self.event(type, body)

    def enqueue(
        self,
        type: str,
        data: Any = None,
        *,
        id: str | None = None,
        time: datetime | str | None = None,
        source: str | None = None,
    ) -> str:
        """Write one event to the on-disk queue (nothing is sent); returns its id."""
        event = self.event(type, data, id=id, time=time, source=source)
        self.queue.put([event])
        return str(event["id"])

    def enqueue_events(self, events: Iterable[Mapping[str, Any]]) -> list[str]:
        """Write CloudEvents to the on-disk queue, all or none; returns their ids."""
        complete = [self.complete(e) for e in events]
        self.queue.put(complete)
        return [str(e["id"]) for e in complete]

    @property
    def queue(self) -> EventQueue:
        """The on-disk queue (opened on first use)."""
        if self._queue is None:
            self._queue = EventQueue(self.queue_path, max_events=self.queue_max_events)
        return self._queue

    def close_queue(self) -> None:
        if self._queue is not None:
            self._queue.close()
            self._queue = None

    # ── plans ────────────────────────────────────────────────────────────

    def send_plan(self, event: dict[str, Any]) -> Plan[EventResult]:
        call = Call("POST", "/", orjson.dumps(event), {"content-type": STRUCTURED})
        done = yield from exchange(call, self.retry)
        response = done.response
        if not response.is_success:
            raise Rejected(response.status_code, problem_of(response), event_id=event["id"])
        body = response.json() if response.content else {}
        topic = body.get("topic") if isinstance(body, dict) else None
        return EventResult(id=event["id"], status=response.status_code, accepted=True, topic=topic)

    def batch_plan(self, events: Sequence[dict[str, Any]]) -> Plan[BatchResult]:
        """Send ``events`` in batches; retry what is retryable; report every event.

        A batch refused as a whole with 400 or 413 (too large for ingest, or one event
        that spoils it) is halved and each half sent again, down to single events: an
        event still refused alone is reported refused for good, and the others go on."""
        results: list[EventResult | None] = [None] * len(events)
        retried = 0
        parts = deque(chunks(events, self.max_batch, self.max_batch_bytes))
        while parts:
            pending, attempt = parts.popleft(), 0
            while pending:
                call = Call(
                    "POST", "/", orjson.dumps([events[i] for i in pending]),
                    {"content-type": BATCH},
                )  # fmt: skip
                try:
                    done = yield from exchange(call, self.retry)
                except Unavailable as exc:
                    exc.result = _partial(results, events, retried)
                    raise
                retried += len(pending) if done.attempts > 1 else 0
                response = done.response
                if response.status_code in SPLIT_ON and len(pending) > 1:
                    half = len(pending) // 2
                    parts.extendleft([pending[half:], pending[:half]])  # in order, first
                    break
                if response.status_code in SPLIT_ON:
                    (index,) = pending
                    results[index] = EventResult(
                        id=events[index]["id"], status=response.status_code, accepted=False,
                        index=index, problem=problem_of(response),
                    )  # fmt: skip
                    break
                if not response.is_success:
                    raise Rejected(response.status_code, problem_of(response))
                body = response.json() if response.content else {}
                items = body.get("results") if isinstance(body, dict) else None
                if not isinstance(items, list) or len(items) != len(pending):
                    items = [{"accepted": True, "status": response.status_code}] * len(pending)
                again: list[int] = []
                asked = 0.0
                for position, item in enumerate(items):
                    index = pending[_position(item, position, len(pending))]
                    outcome = _result(index, item, events[index]["id"])
                    results[index] = outcome  # final, or kept if the tries run out
                    if outcome.retryable and not outcome.accepted:
                        again.append(index)
                        asked = max(asked, _retry_after(outcome.problem))
                attempt += 1
                if again:
                    wait = self.retry.delay(attempt, asked or None)
                    if wait is None:
                        break  # the tries are used up: these stay retryable, not accepted
                    retried += len(again)
                    yield Sleep(wait)
                pending = again
        return BatchResult([r for r in results if r is not None], retried)

    def flush_plan(self) -> Plan[FlushResult]:
        """Send the queue oldest first, a batch at a time, deleting each event after its
        2xx. Stops (raising :class:`Unavailable`) when ingest cannot take the rest."""
        queue = self.queue
        sent, retried = 0, 0
        refused: list[EventResult] = []
        while True:
            rows = queue.peek(self.max_batch, self.max_batch_bytes)
            if not rows:
                return FlushResult(sent, refused, retried)
            try:
                outcome = yield from self.batch_plan([q.event for q in rows])
            except Unavailable as exc:
                exc.result = None
                raise
            retried += outcome.retried
            taken = [q.seq for q, r in zip(rows, outcome.results, strict=True) if r.accepted]
            final: list[tuple[Queued, int, Mapping[str, Any] | None]] = [
                (q, r.status, r.problem)
                for q, r in zip(rows, outcome.results, strict=True)
                if not r.accepted and not r.retryable
            ]
            queue.delete(taken)
            queue.reject(final)
            sent += len(taken)
            refused += [r for r in outcome.results if not r.accepted and not r.retryable]
            stuck = [r for r in outcome.results if r.retryable and not r.accepted]
            if stuck:
                raise Unavailable(
                    f"{len(stuck)} queued event(s) still refused for now: {stuck[0].detail}",
                    attempts=self.retry.attempts,
                    status=stuck[0].status,
                )

    def queued_send_plan(self, event: dict[str, Any]) -> Plan[EventResult]:
        """Queue ``event`` first, then flush; when ingest is unreachable it stays queued."""
        self.queue.put([event])
        try:
            flushed = yield from self.flush_plan()
        except Unavailable:
            return EventResult(id=event["id"], status=0, accepted=False, retryable=True,
                               queued=True)  # fmt: skip
        for refused in flushed.rejected:
            if refused.id == event["id"]:
                raise Rejected(refused.status, refused.problem or {}, event_id=refused.id)
        return EventResult(id=event["id"], status=202, accepted=True)

    def ack_plan(self, command_id: str) -> Plan[None]:
        call = Call("POST", f"/devices/{self.need_device()}/commands/{command_id}/ack")
        done = yield from exchange(call, self.retry)
        # 404: unknown or already acked (e.g. acked on another connection)
        if not done.response.is_success and done.response.status_code != 404:
            raise Rejected(done.response.status_code, problem_of(done.response))

    def need_device(self) -> str:
        if not self.device_id:
            raise ClientError("commands need the client's device_id (LoomClient(device_id=...))")
        return self.device_id


def _position(item: Mapping[str, Any], position: int, size: int) -> int:
    index = item.get("index")
    return index if isinstance(index, int) and 0 <= index < size else position


def _retry_after(problem: Mapping[str, Any] | None) -> float:
    value = (problem or {}).get("retry_after")
    if isinstance(value, int | float):
        return float(value)
    return parse_retry_after(value if isinstance(value, str) else None) or 0.0


def _partial(
    results: list[EventResult | None], events: Sequence[dict[str, Any]], retried: int
) -> BatchResult:
    """The outcomes so far; events not yet decided are marked unsent and retryable."""
    return BatchResult(
        [
            r or EventResult(id=events[i]["id"], status=0, accepted=False, index=i, retryable=True)
            for i, r in enumerate(results)
        ],
        retried,
    )
