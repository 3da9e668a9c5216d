"""``WebSocket /devices/{device_id}/commands/stream``: a device's commands, one at a time.

The device connects with its own token (``Authorization: Bearer …``, or ``?token=``
where headers cannot be set: a query string may end up in proxies' access logs); any
other token is refused with close code 1008. The token is checked again before every
command sent and on every turn of the loop, so an open connection closes with 1008 (after
an ``{"type": "error", "detail"}`` frame) once its token is revoked or the device
deleted: at once by PostgreSQL NOTIFY on any replica, within
``ingest_token_cache_seconds`` at the latest. The server sends
``{"type": "command", "command_id", "sequence", "event"}`` (``event``: the command as a
structured-mode CloudEvent; one command per frame) and the device answers
``{"type": "ack", "command_id"}`` (an ack naming an unknown command, or one that expired
or was disabled before it, is answered ``{"type": "error", "command_id", "detail"}``).
Commands go strictly in sequence order with one unacknowledged at a time: the next is
sent once the current one is acked; an unacked one is sent again after
``ingest_command_ack_timeout_seconds`` and on every new connection (at least once).
``{"type": "ping"}`` is answered ``{"type": "pong"}``. A new command wakes the
connection through PostgreSQL NOTIFY (any replica), besides a poll every
``ingest_command_poll_seconds``. A frame that is not JSON, or not one of these, closes
the connection with 1007 after an ``{"type": "error", "detail"}`` frame; the database
going away closes it with 1013 (try again later).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

import orjson
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

from functions.ingest.commands import device_only
from functions.ingest.problems import (
    Forbidden,
    IngestError,
    ServiceUnavailable,
    Unauthorized,
    problem,
)
from functions.ingest.state import IngestState, log

__all__ = ["add_command_stream"]

INVALID_DATA, POLICY, TRY_AGAIN = 1007, 1008, 1013
CHANNEL = "websocket"


class _BadFrame(ValueError):
    """What the device sent is not a frame of this protocol."""


class _Revoked(Exception):
    """The connection's token no longer speaks for the device (revoked, device deleted)."""


class _Connection:
    """One device's socket: sends serialised (two tasks send), frames parsed."""

    def __init__(
        self, websocket: WebSocket, state: IngestState, device_id: str, auth: str | None
    ) -> None:
        self.websocket = websocket
        self.state = state
        self.device_id = device_id
        self.auth = auth
        self._sending = asyncio.Lock()

    async def authorised(self) -> None:
        """Raise :class:`_Revoked` unless the token still speaks for the device (a cached
        check, forgotten at once when the device's tokens are revoked)."""
        try:
            device_only(await self.state.tokens.principal(self.auth), self.device_id)
        except (Unauthorized, Forbidden) as exc:
            raise _Revoked(exc.detail) from None

    async def send(self, frame: dict[str, Any]) -> None:
        async with self._sending:
            await self.websocket.send_text(orjson.dumps(frame).decode())

    async def deliver(self, wake: asyncio.Event) -> None:
        """Send the first unacked command; again after the ack timeout; the next once
        it is acked. ``wake`` is set by NOTIFY and by acks read on this socket."""
        commands, settings = self.state.commands, self.state.settings
        ack_timeout = settings.ingest_command_ack_timeout_seconds
        loop = asyncio.get_running_loop()
        in_flight: tuple[str, float] | None = None  # command id, when to send it again
        while True:
            wake.clear()
            await self.authorised()  # every turn, and so before anything is sent
            waiting = await commands.waiting(self.device_id, 1)
            now = loop.time()
            timeout = settings.ingest_command_poll_seconds
            if waiting:
                command = waiting[0]
                if in_flight is None or in_flight[0] != command.command_id or now >= in_flight[1]:
                    await commands.delivered(self.device_id, waiting, CHANNEL)  # then sent
                    await self.send(command.frame())
                    in_flight = (command.command_id, now + ack_timeout)
                timeout = min(timeout, max(0.0, in_flight[1] - now))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout)

    async def read(self, wake: asyncio.Event) -> None:
        """Acks (and pings) until the device goes away."""
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            frame = _frame(message)
            if frame["type"] == "ping":
                await self.send({"type": "pong"})
                continue
            command_id = frame["command_id"]
            await self.authorised()
            acked = await self.state.commands.ack(self.device_id, command_id, CHANNEL)
            if acked is None or acked.detail is not None:
                detail = acked.detail if acked else f"no command {command_id!r} for this device"
                await self.send({"type": "error", "command_id": command_id, "detail": detail})
            if acked is not None:
                wake.set()


def _frame(message: Mapping[str, Any]) -> dict[str, Any]:
    text = message.get("text")
    if text is None:
        raise _BadFrame("send text frames of JSON, not binary ones")
    try:
        frame = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise _BadFrame(f"text frame is not JSON: {exc}") from None
    if not isinstance(frame, dict) or frame.get("type") not in ("ack", "ping"):
        raise _BadFrame('a frame is {"type": "ack", "command_id": …} or {"type": "ping"}')
    command_id = frame.get("command_id")
    if frame["type"] == "ack" and (not isinstance(command_id, str) or not command_id):
        raise _BadFrame("an ack names its command_id (a string)")
    return frame


def add_command_stream(app: FastAPI) -> None:
    @app.websocket("/devices/{device_id}/commands/stream")
    async def command_stream(websocket: WebSocket, device_id: str) -> None:
        state: IngestState = websocket.app.state.ingest
        token = websocket.query_params.get("token")
        auth = websocket.headers.get("authorization") or (f"Bearer {token}" if token else None)
        try:
            device_only(await state.tokens.principal(auth), device_id)
        except IngestError as exc:
            await websocket.close(code=POLICY, reason=exc.detail[:120])
            return
        await websocket.accept()
        state.metrics.websocket_connections.inc()
        state.metrics.websocket_open.inc()
        connection = _Connection(websocket, state, device_id, auth)
        log.info("ingest.command_stream_opened", device_id=device_id)
        try:
            with state.notifier.subscribe(device_id) as wake:
                await _until_first_ends(connection.deliver(wake), connection.read(wake))
        except _BadFrame as exc:
            await _close(connection, INVALID_DATA, {"type": "error", "detail": str(exc)})
        except _Revoked as exc:
            log.info("ingest.command_stream_revoked", device_id=device_id)
            await _close(connection, POLICY, {"type": "error", "detail": str(exc)})
        except ServiceUnavailable as exc:
            await _close(connection, TRY_AGAIN, {**problem(exc), "type": "error"})
        except IngestError as exc:  # e.g. an ack naming a command id the database cannot hold
            await _close(connection, INVALID_DATA, {**problem(exc), "type": "error"})
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass  # the device went away while something was sent to it
        finally:
            state.metrics.websocket_open.dec()
            log.info("ingest.command_stream_closed", device_id=device_id)


async def _until_first_ends(*steps: Any) -> None:
    """Run ``steps`` together until one ends; cancel the rest; raise what the first raised."""
    tasks = [asyncio.ensure_future(step) for step in steps]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in done:
        task.result()


async def _close(connection: _Connection, code: int, frame: dict[str, Any]) -> None:
    with contextlib.suppress(Exception):
        await connection.send(frame)
        await connection.websocket.close(code=code, reason=str(frame.get("detail", ""))[:120])
