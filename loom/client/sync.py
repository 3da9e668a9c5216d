"""``LoomClient``: the blocking device client (``httpx.Client``).

from loom.client import LoomClient

with LoomClient("http://localhost:8000", token, device_id="phone-1") as loom:
    loom.send("device.sensor.gps.raw", {"latitude": 52.52, "longitude": 13.405})
    loom.send("device.health.heartrate.raw", {"bpm": 64}, queue=True)  # kept if offline
    loom.flush()  # later: what was queued goes out, oldest first
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import httpx

from loom.client.closing import Closing
from loom.client.core import COMMAND_STATUS, ClientCore, Command
from loom.client.events import BatchResult, EventResult, FlushResult
from loom.client.retry import run

__all__ = ["LoomClient"]


class LoomClient(ClientCore[httpx.Client, httpx.BaseTransport], Closing):
    """Sends CloudEvents to Loom's ingest, retrying what is worth retrying.

    ``url`` is ingest's base URL, ``token`` the device's token. ``device_id`` (when
    given) fills ``data.device_id``, the ``partitionkey`` and the default ``source``
    ``/devices/<device_id>``. ``queue_path`` is the on-disk queue (default: in the
    user cache dir, per URL and device; opened only when used), ``queue_max_events``
    its bound. ``timeout`` is per request in seconds; ``max_batch`` and
    ``max_batch_bytes`` cut large batches; ``retry`` says how hard to try.
    ``transport`` replaces httpx's (for tests). Use it as a context manager, or
    :meth:`close` it.
    """

    def connect(self, transport: httpx.BaseTransport | None) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers=self.headers, timeout=self.timeout, transport=transport
        )

    def send(
        self,
        type: str,
        data: Any = None,
        *,
        id: str | None = None,
        time: datetime | str | None = None,
        source: str | None = None,
        queue: bool = False,
    ) -> EventResult:
        """Post one event (structured mode); returns its result once Kafka has it.

        Raises :class:`Rejected` on a 4xx (``.detail``, ``.errors``) and
        :class:`Unavailable` when the retries are used up. With ``queue=True`` the
        event is first written to the on-disk queue and the queue is flushed; if
        ingest cannot be reached the result says ``queued`` instead of raising.
        """
        event = self.event(type, data, id=id, time=time, source=source)
        return self.send_event(event, queue=queue)

    def send_event(self, event: Mapping[str, Any], *, queue: bool = False) -> EventResult:
        """Post one CloudEvent given as a dict (missing attributes are filled in)."""
        complete = self.complete(event)
        plan = self.queued_send_plan(complete) if queue else self.send_plan(complete)
        return run(plan, self.http)

    def send_batch(self, events: Iterable[Mapping[str, Any]]) -> BatchResult:
        """Post many CloudEvents in batched mode; every event gets its own result.

        A refused event does not raise: see ``result.rejected``. A batch refused whole
        with 400 or 413 is halved until the event at fault is alone, and only it is
        refused. Another whole request refused (bad token) raises :class:`Rejected`;
        giving up raises :class:`Unavailable` with the outcomes decided so far in
        ``.result``.
        """
        return run(self.batch_plan([self.complete(e) for e in events]), self.http)

    def flush(self) -> FlushResult:
        """Send what the queue holds, oldest first (see :meth:`ClientCore.flush_plan`)."""
        return run(self.flush_plan(), self.http)

    def respond(
        self,
        command: Command | str,
        type: str = COMMAND_STATUS,
        data: Mapping[str, Any] | None = None,
        *,
        queue: bool = False,
    ) -> EventResult:
        """Post a response to a command: ``data`` plus its ``command_id`` (and, for the
        default type, ``status`` "succeeded" unless ``data`` says otherwise)."""
        return self.send_event(self.response_event(command, type, data), queue=queue)

    def close(self) -> None:
        self.http.close()
        self.close_queue()
