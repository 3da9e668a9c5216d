"""Remote commands for a device: a WebSocket stream, or long polls where sockets cannot go.

WebSocket ``GET /devices/{device_id}/commands/stream`` (``Authorization: Bearer``
with the device's token). The server sends text frames
``{"type": "command", "command_id": …, "sequence": …, "event": {CloudEvent}}``;
the client answers ``{"type": "ack", "command_id": …}`` once the command is
handled. Commands not acked are sent again after a reconnect.

Long poll: ``GET /devices/{device_id}/commands/next?wait=30`` answers 200 with
``{"commands": [...]}`` (the same command objects), or 204 when none came in time;
a command is acked with ``POST /devices/{device_id}/commands/{command_id}/ack``.
The server may also send ``{"type": "error", ...}`` or ``pong`` frames; they are
logged or skipped.

Either way the stream reconnects with backoff for as long as it is iterated, and
remembers the last ``remember`` acked command ids: a command sent again after its
ack was lost is acked once more and not handed out twice. A refused handshake
(401, 403, 404) or a close for policy (1008) raises :class:`Rejected`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal

import httpx
import orjson
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from loom.client.core import Command
from loom.client.errors import Rejected, Unavailable
from loom.client.retry import Call, arun, exchange, retryable_status
from loom.logging import get_logger

if TYPE_CHECKING:
    from loom.client.aio import AsyncLoomClient

__all__ = ["Transport", "command_stream"]

Transport = Literal["websocket", "poll"]
POLICY_VIOLATION = 1008
log = get_logger("loom.client")

Ack = Callable[[], Awaitable[None]]
Delivery = tuple[dict[str, Any], Ack]


class _Recent:
    """The last ``size`` command ids the caller acked."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._ids: OrderedDict[str, None] = OrderedDict()

    def add(self, command_id: str) -> None:
        self._ids[command_id] = None
        self._ids.move_to_end(command_id)
        while len(self._ids) > self.size:
            self._ids.popitem(last=False)

    def __contains__(self, command_id: object) -> bool:
        return command_id in self._ids


def _command(frame: Any, ack: Ack, recent: _Recent) -> Command | None:
    if isinstance(frame, dict) and frame.get("type") == "error":
        log.warning("client.command_error", detail=frame.get("detail"),
                    command_id=frame.get("command_id"))  # fmt: skip
    if not isinstance(frame, dict) or frame.get("type", "command") != "command":
        return None
    command_id, event = frame.get("command_id"), frame.get("event")
    if not isinstance(command_id, str) or not isinstance(event, dict):
        log.warning("client.command_malformed", frame=str(frame)[:200])
        return None
    sequence = frame.get("sequence")

    async def acknowledge() -> None:
        recent.add(command_id)  # handled: a resend is acked, never handed out again
        await ack()

    return Command(command_id, sequence if isinstance(sequence, int) else 0, event, acknowledge)


async def command_stream(
    client: AsyncLoomClient,
    *,
    transport: Transport = "websocket",
    auto_ack: bool = True,
    wait: float = 30.0,
    remember: int = 256,
) -> AsyncGenerator[Command, None]:
    """Commands for ``client.device_id``, in the order the server sends them."""
    recent = _Recent(remember)
    source = _websocket(client) if transport == "websocket" else _poll(client, wait)
    async for frame, ack in source:
        command = _command(frame, ack, recent)
        if command is None:
            continue
        if command.command_id in recent:
            await ack()
            continue
        yield command
        if auto_ack:
            await command.ack()


def _refused(status: int, body: bytes | bytearray | None) -> Rejected:
    try:
        problem = orjson.loads(bytes(body or b""))
    except orjson.JSONDecodeError:
        problem = None
    if not isinstance(problem, dict):
        text = (body or b"").decode(errors="replace").strip()[:500]
        problem = {"status": status, "detail": text or f"HTTP {status}"}
    return Rejected(status, problem)


def _frames(response: httpx.Response) -> list[Any]:
    """The command frames of a long poll's answer: ``{"commands": [...]}`` or a bare list."""
    try:
        body = response.json()
    except ValueError:
        return []
    if isinstance(body, dict):
        body = body.get("commands")
    return body if isinstance(body, list) else []


def _websocket_url(client: AsyncLoomClient) -> str:
    base = "ws" + client.url.removeprefix("http")
    return f"{base}/devices/{client.need_device()}/commands/stream"


async def _websocket(client: AsyncLoomClient) -> AsyncIterator[Delivery]:
    url, attempt = _websocket_url(client), 0
    while True:
        try:
            async with connect(
                url, additional_headers=client.headers, open_timeout=client.timeout,
                proxy=None, user_agent_header=None,
            ) as socket:  # fmt: skip
                attempt = 0
                log.info("client.commands_connected", url=url)
                async for message in socket:
                    try:
                        frame = orjson.loads(message)
                    except orjson.JSONDecodeError:
                        log.warning("client.command_not_json", frame=str(message)[:200])
                        continue
                    command_id = frame.get("command_id") if isinstance(frame, dict) else None

                    async def ack(socket: Any = socket, command_id: Any = command_id) -> None:
                        # a lost connection: the server sends it again; acked then
                        with contextlib.suppress(ConnectionClosed):
                            reply = {"type": "ack", "command_id": command_id}
                            await socket.send(orjson.dumps(reply).decode())

                    yield frame, ack
        except InvalidStatus as exc:
            status = exc.response.status_code
            if not retryable_status(status):
                raise _refused(status, exc.response.body) from None
            log.warning("client.commands_refused", status=status)
        except ConnectionClosed as exc:
            if exc.rcvd is not None and exc.rcvd.code == POLICY_VIOLATION:
                raise Rejected(403, {"status": 403, "detail": exc.rcvd.reason}) from None
            log.info("client.commands_disconnected", reason=str(exc))
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            log.info("client.commands_unreachable", error=str(exc))
        attempt += 1
        await asyncio.sleep(client.retry.backoff(attempt))


async def _poll(client: AsyncLoomClient, wait: float) -> AsyncIterator[Delivery]:
    base, attempt = f"/devices/{client.need_device()}/commands", 0
    call = Call("GET", f"{base}/next", params={"wait": f"{wait:g}"}, timeout=wait + client.timeout)
    while True:
        try:
            done = await arun(exchange(call, client.retry), client.http)
        except Unavailable as exc:
            log.info("client.commands_unreachable", error=str(exc))
            attempt += 1
            await asyncio.sleep(client.retry.backoff(attempt))
            continue
        attempt = 0
        response = done.response
        if response.status_code == 204:
            continue
        if not response.is_success:
            raise _refused(response.status_code, response.content)
        for frame in _frames(response):
            command_id = frame.get("command_id") if isinstance(frame, dict) else None

            async def ack(command_id: Any = command_id) -> None:
                try:
                    await arun(client.ack_plan(str(command_id)), client.http)
                except (Unavailable, httpx.HTTPError) as exc:
                    log.warning("client.command_ack_failed", command_id=command_id, error=str(exc))

            yield frame, ack
