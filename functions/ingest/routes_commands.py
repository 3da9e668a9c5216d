"""Remote control over HTTP.

Admin token: issue a command (``POST /devices/{id}/commands``), read the audit log
(``GET /devices/{id}/commands``, ``…/{command_id}``), enable dangerous commands
(``PUT /devices/{id}/commands/allowed``). The device's own token: long-poll for what is
waiting (``GET /devices/{id}/commands/next?wait=30``) and ack it
(``POST /devices/{id}/commands/{command_id}/ack``). The WebSocket is in
:mod:`functions.ingest.command_stream`.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Path, Query, Request
from fastapi.responses import Response

from functions.commands.queue import Command, Status, command_types
from functions.ingest.commands import (
    Acked,
    Allowed,
    AllowedIn,
    CommandBatch,
    CommandIn,
    CommandIssued,
    CommandPage,
    device_only,
)
from functions.ingest.openapi import PROBLEM_RESPONSES
from functions.ingest.problems import NotFound
from functions.ingest.state import Admin, IngestState, ingest_state

__all__ = ["add_command_routes"]

_ID = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
DeviceId = Annotated[str, Path(pattern=_ID)]
CommandId = Annotated[str, Path(min_length=1, max_length=128)]
_CONTENT = PROBLEM_RESPONSES["401"]["content"]


def _errors(*codes: str, **described: str) -> dict[int | str, dict[str, Any]]:
    found: dict[int | str, dict[str, Any]] = {c: PROBLEM_RESPONSES[c] for c in codes}
    found.update({code: {"description": text, "content": _CONTENT}
                  for code, text in described.items()})  # fmt: skip
    return found


_ADMIN = ("401", "403", "503")
_DEVICE = {"403": "Not this device's own token (the admin's neither).", "401": "No token."}


async def _device(request: Request, device_id: str) -> IngestState:
    """The state, once the request's token is shown to be ``device_id``'s own."""
    state = ingest_state(request)
    device_only(await state.principal(request), device_id)
    return state


def add_command_routes(app: FastAPI, state: IngestState) -> None:
    largest = max(t.max_bytes for t in command_types(state.catalog))
    router = APIRouter(prefix="/devices/{device_id}/commands", tags=["commands"],
                       max_body_size=largest + 64 * 1024)  # fmt: skip

    @router.post(
        "", status_code=202, response_model=CommandIssued,
        responses=_errors(*_ADMIN, "413", **{
            "403": "Not the admin token, or a dangerous command not enabled for the device.",
            "404": "No such device, or it was deleted.",
        }),
    )  # fmt: skip
    async def issue_command(device_id: DeviceId, body: CommandIn, request: Request) -> Any:
        """Queue a command for a device and write it to its type's Kafka topic. The answer
        (202) comes once the broker has it; the device receives it over its WebSocket or
        long-poll, in order. Dangerous types (shell, keystrokes, files) are refused (403)
        unless enabled for the device."""
        state = ingest_state(request)
        principal = await state.principal(request)
        principal.require_admin()
        command = await state.commands.issue(device_id, body, principal)
        return CommandIssued(**command.model_dump())

    @router.get("", response_model=CommandPage,
                responses=_errors(*_ADMIN, **{"404": "No such device."}))  # fmt: skip
    async def list_commands(
        device_id: DeviceId,
        state: Admin,
        status: Annotated[list[Status] | None, Query()] = None,
        cursor: Annotated[str | None, Query(max_length=20)] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> CommandPage:
        """The device's commands, newest first: who issued what and when, delivery
        (first time, attempts), ack, and the device's answer. `status` filters (repeat it
        for several)."""
        return await state.commands.page(device_id, list(status or []), cursor, limit)

    @router.put("/allowed", response_model=Allowed,
                responses=_errors(*_ADMIN, **{"404": "No such device."}))  # fmt: skip
    async def allow_commands(device_id: DeviceId, body: AllowedIn, state: Admin) -> Allowed:
        """Enable exactly these dangerous command types for the device (an empty list
        disables them all). `GET /devices/{device_id}` shows them as `allowed_commands`."""
        return await state.commands.allow(device_id, body.allowed)

    @router.get(
        "/next", response_model=CommandBatch,
        responses={**_errors("503", **_DEVICE),
                   "204": {"description": "Nothing arrived within `wait` seconds."}},
    )  # fmt: skip
    async def next_commands(
        device_id: DeviceId,
        request: Request,
        wait: Annotated[float, Query(ge=0, le=600)] = 30,
        limit: Annotated[int, Query(ge=1, le=100)] = 10,
    ) -> Any:
        """Long-poll (the device's own token): the device's unacknowledged commands in
        order, up to `limit` and LOOM_INGEST_COMMAND_RESPONSE_MAX_BYTES (one at least), as
        soon as there are any; 204 after `wait` seconds (at most
        LOOM_INGEST_COMMAND_MAX_WAIT_SECONDS) without. A command comes again until acked.
        A token revoked while waiting (rotated, device deleted) is answered 401."""
        state = ingest_state(request)
        loop = asyncio.get_running_loop()
        settings = state.settings
        deadline = loop.time() + min(wait, settings.ingest_command_max_wait_seconds)
        with state.notifier.subscribe(device_id) as wake:
            while True:
                wake.clear()
                await _device(request, device_id)  # every turn: a revocation wakes it
                commands = await state.commands.waiting(device_id, limit)
                if commands:
                    await state.commands.delivered(device_id, commands, "longpoll")
                    return CommandBatch.model_validate({"commands": [c.frame() for c in commands]})
                left = deadline - loop.time()
                if left <= 0 or await request.is_disconnected():
                    return Response(status_code=204)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        wake.wait(), min(left, settings.ingest_command_poll_seconds)
                    )

    no_command = _errors(*_ADMIN, **{"404": "No such command for this device."})

    @router.get("/{command_id}", response_model=Command, responses=no_command)
    async def get_command(device_id: DeviceId, command_id: CommandId, state: Admin) -> Command:
        """One command's audit record."""
        return await state.commands.get(device_id, command_id)

    @router.post("/{command_id}/ack", response_model=Acked,
                 responses=_errors("503", **_DEVICE, **{"404": "No such command."}))  # fmt: skip
    async def ack_command(device_id: DeviceId, command_id: CommandId, request: Request) -> Acked:
        """The device has the command (its own token); it is not delivered again. A command
        that expired, or whose type was disabled, before the ack stays as it is: the answer
        has its status, no `acked_at`, and a `detail` saying why."""
        state = await _device(request, device_id)
        acked = await state.commands.ack(device_id, command_id, "longpoll")
        if acked is None:
            raise NotFound(f"no command {command_id!r} for device {device_id!r}")
        return acked

    app.include_router(router)
