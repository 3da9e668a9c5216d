"""``WebSocket /audio/stream/{device_id}``: audio chunks in, one ack per chunk out.

Frames: a JSON text frame is one seed ``AudioChunk`` (optionally wrapped as
``{"message_type": "audio_chunk", "data": {...}}``); a binary frame is raw audio
whose ``sample_rate``, ``channels`` and ``format`` come from the query string.
Each chunk is acknowledged (``{"type": "ack", ...}``) only after the broker has
it, in order. At most ``ingest_websocket_inflight`` chunks wait for the broker;
then the server stops reading, so a fast sender is slowed by TCP backpressure.
A bad frame closes the socket with 1007 (invalid data) or 1008 (policy) and a
reason; Kafka trouble closes with 1013 (try again later).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from typing import Any

import orjson
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

from functions.ingest.accept import Accepted
from functions.ingest.problems import (
    Forbidden,
    IngestError,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
    problem,
)
from functions.ingest.routes_events import seed_event
from functions.ingest.state import IngestState
from loom.errors import LoomError

__all__ = ["add_audio_stream"]

INVALID_DATA, POLICY, TRY_AGAIN = 1007, 1008, 1013


def _chunk(message: dict[str, Any], query: dict[str, str], device_id: str) -> dict[str, Any]:
    if "bytes" in message and message["bytes"] is not None:
        raw: bytes = message["bytes"]
        sample_rate = int(query.get("sample_rate", "16000"))
        channels = int(query.get("channels", "1"))
        fmt = query.get("format", "pcm_s16le")
        duration = (
            len(raw) * 1000 // max(1, sample_rate * channels * 2) if fmt == "pcm_s16le" else 0
        )
        return {"device_id": device_id, "chunk_data": base64.b64encode(raw).decode(),
                "sample_rate": sample_rate, "channels": channels, "format": fmt,
                "duration_ms": duration}  # fmt: skip
    try:
        frame = orjson.loads(message.get("text") or "")
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"text frame is not JSON: {exc}") from None
    if isinstance(frame, dict) and "message_type" in frame:
        if frame["message_type"] != "audio_chunk":
            raise ValueError(f"unknown message_type {frame['message_type']!r}")
        frame = frame.get("data")
    if not isinstance(frame, dict):
        raise ValueError("a frame must be a JSON object (an audio chunk)")
    frame.setdefault("device_id", device_id)
    return frame


def add_audio_stream(app: FastAPI) -> None:
    @app.websocket("/audio/stream/{device_id}")
    async def audio_stream(websocket: WebSocket, device_id: str) -> None:
        state: IngestState = websocket.app.state.ingest
        event_type = state.catalog["device.audio.raw"]
        token = websocket.query_params.get("token")
        auth = websocket.headers.get("authorization") or (f"Bearer {token}" if token else None)
        try:
            principal = await state.tokens.principal(auth)
            if principal.device_id not in (None, device_id):
                raise Unauthorized(f"this token is not device {device_id!r}'s")
        except IngestError as exc:
            await websocket.close(code=POLICY, reason=exc.detail[:120])
            return
        await websocket.accept()
        state.metrics.websocket_connections.inc()
        state.metrics.websocket_open.inc()
        limit = state.settings.ingest_websocket_inflight
        # Bounded: when `limit` chunks await the broker, `put` blocks and reading stops.
        pending: asyncio.Queue[tuple[Accepted, asyncio.Task[list[Exception | None]]] | None]
        pending = asyncio.Queue(maxsize=limit)
        query = dict(websocket.query_params)

        async def acknowledge() -> None:
            """Ack each chunk, in order, once the broker has it."""
            while (item := await pending.get()) is not None:
                accepted, delivery = item
                (error,) = await delivery
                if error is not None:
                    raise error
                ack = {"type": "ack", "message_id": accepted.id, "id": accepted.id}
                await websocket.send_json({**ack, "topic": accepted.record.topic})

        acker = asyncio.create_task(acknowledge(), name="ws-ack")

        async def unless_acker_failed(step: Any) -> Any:
            """Await ``step``, but give up (raising its error) if the acker dies first."""
            task = asyncio.ensure_future(step)
            await asyncio.wait({task, acker}, return_when=asyncio.FIRST_COMPLETED)
            if not task.done():
                task.cancel()
                await acker  # raises the acker's error; a clean end means we were told to stop
            return await task

        try:
            while True:
                message = await unless_acker_failed(websocket.receive())
                if message["type"] == "websocket.disconnect":
                    break
                try:
                    # a token revoked since the socket opened (rotation, the device deleted)
                    # stops it here: the check is a cache hit, cleared on every replica then
                    principal = await state.tokens.principal(auth)
                    chunk = _chunk(message, query, device_id)
                    accepted = state.acceptor.accept(
                        seed_event(event_type, chunk, principal), principal
                    )
                    state.limiter.take(accepted.device_id)
                except ServiceUnavailable:
                    raise
                except (ValueError, TypeError, LoomError) as exc:
                    await unless_acker_failed(pending.put(None))
                    await acker  # the good chunks before this one are acked first
                    body = problem(exc) if isinstance(exc, LoomError) else {"detail": str(exc)}
                    await websocket.send_json({**body, "type": "error"})
                    code = INVALID_DATA
                    if isinstance(exc, TooManyRequests):
                        code = TRY_AGAIN
                    elif isinstance(exc, (Unauthorized, Forbidden)):
                        code = POLICY
                    await websocket.close(code=code, reason=str(body["detail"])[:120])
                    return
                delivery = asyncio.create_task(state.deliver([accepted]))
                await unless_acker_failed(pending.put((accepted, delivery)))
            await unless_acker_failed(pending.put(None))
            await acker
        except ServiceUnavailable as exc:
            with contextlib.suppress(Exception):
                await websocket.send_json({**problem(exc), "type": "error"})
                await websocket.close(code=TRY_AGAIN, reason="Kafka unavailable; reconnect later")
        except WebSocketDisconnect:
            pass
        finally:
            acker.cancel()
            state.metrics.websocket_open.dec()
