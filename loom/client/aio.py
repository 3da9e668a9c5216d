"""``AsyncLoomClient``: the asyncio device client (``httpx.AsyncClient``), with commands.

    from loom.client import AsyncLoomClient

    async with AsyncLoomClient(url, token, device_id="laptop-1") as loom:
        await loom.send("device.health.heartrate.raw", {"bpm": 64})
        async for command in loom.commands():
            await run(command)          # acked when this body finishes without error
            await loom.respond(command, data={"status": "succeeded"})

The retries, batching and queue are those of :class:`~loom.client.LoomClient`
(one implementation, see :mod:`loom.client.core`); the queue's SQLite calls are
short and run on the event loop.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterable, Mapping
from datetime import datetime
from typing import Any

import httpx

from loom.client.closing import AsyncClosing
from loom.client.commands import Transport, command_stream
from loom.client.core import COMMAND_STATUS, ClientCore, Command
from loom.client.events import BatchResult, EventResult, FlushResult
from loom.client.retry import arun

__all__ = ["AsyncLoomClient"]


class AsyncLoomClient(ClientCore[httpx.AsyncClient, httpx.AsyncBaseTransport], AsyncClosing):
    """The async twin of :class:`~loom.client.LoomClient` (same arguments), plus
    :meth:`commands` to receive remote commands."""

    def connect(self, transport: httpx.AsyncBaseTransport | None) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.url, headers=self.headers, timeout=self.timeout, transport=transport
        )

    async def send(
        self,
        type: str,
        data: Any = None,
        *,
        id: str | None = None,
        time: datetime | str | None = None,
        source: str | None = None,
        queue: bool = False,
    ) -> EventResult:
        """Post one event; see :meth:`LoomClient.send`."""
        event = self.event(type, data, id=id, time=time, source=source)
        return await self.send_event(event, queue=queue)

    async def send_event(self, event: Mapping[str, Any], *, queue: bool = False) -> EventResult:
        complete = self.complete(event)
        plan = self.queued_send_plan(complete) if queue else self.send_plan(complete)
        return await arun(plan, self.http)

    async def send_batch(self, events: Iterable[Mapping[str, Any]]) -> BatchResult:
        """Post many events in batched mode; see :meth:`LoomClient.send_batch`."""
        return await arun(self.batch_plan([self.complete(e) for e in events]), self.http)

    async def flush(self) -> FlushResult:
        """Send what the queue holds, oldest first."""
        return await arun(self.flush_plan(), self.http)

    async def respond(
        self,
        command: Command | str,
        type: str = COMMAND_STATUS,
        data: Mapping[str, Any] | None = None,
        *,
        queue: bool = False,
    ) -> EventResult:
        """Post a response CloudEvent to ``command`` (its ``command_id`` in ``data``)."""
        return await self.send_event(self.response_event(command, type, data), queue=queue)

    def commands(
        self,
        *,
        transport: Transport = "websocket",
        auto_ack: bool = True,
        wait: float = 30.0,
        remember: int = 256,
    ) -> AsyncGenerator[Command, None]:
        """Commands sent to this device, for as long as it is iterated.

        With ``auto_ack`` (the default) a command is acked when the loop body that
        got it finishes without error (when the next one is asked for); a body that
        raises or ``break``\\ s leaves it un-acked, so it comes again after a
        reconnect — call ``await command.ack()`` to ack earlier. With
        ``auto_ack=False`` only ``command.ack()`` acks. Handlers should be idempotent
        per ``command_id``: an ack can be lost. ``transport="poll"`` uses long polls
        of ``wait`` seconds instead of the WebSocket. Close the iterator (e.g. with
        ``contextlib.aclosing``) to disconnect at once.
        """
        self.need_device()
        return command_stream(
            self, transport=transport, auto_ack=auto_ack, wait=wait, remember=remember
        )

    async def aclose(self) -> None:
        await self.http.aclose()
        self.close_queue()
