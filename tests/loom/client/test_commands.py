"""Remote commands against a small local server that speaks the commands protocol.

The WebSocket server sends every command not yet acked on each connection, in order,
and records acks; it can drop its connections to make the client reconnect. The long
poll runs against the HTTP fake ingest.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from loom.client import AsyncLoomClient, ClientError, Command, Rejected, RetryPolicy
from tests.loom.client.fake_ingest import running

DEVICE, TOKEN = "laptop-1", "loom_device_token"
FAST = RetryPolicy(attempts=3, base_seconds=0.02, max_seconds=0.1)


def command(n: int, type_: str = "device.command.app.launch") -> dict[str, Any]:
    event = {"specversion": "1.0", "id": f"ev-{n}", "source": "/loom", "type": type_,
             "data": {"device_id": DEVICE, "app_name": f"app-{n}"}}  # fmt: skip
    return {"type": "command", "command_id": f"cmd-{n}", "sequence": n, "event": event}


@dataclass
class CommandServer:
    commands: list[dict[str, Any]] = field(default_factory=list)
    acked: list[str] = field(default_factory=list)
    connections: int = 0
    drop: asyncio.Event = field(default_factory=asyncio.Event)
    url: str = ""

    def waiting(self) -> list[dict[str, Any]]:
        return [c for c in self.commands if c["command_id"] not in self.acked]

    def check(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.path != f"/devices/{DEVICE}/commands/stream":
            return connection.respond(404, "no such route\n")
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            body = json.dumps({"status": 401, "detail": "unknown or revoked token"})
            return Response(401, "Unauthorized", Headers(), body.encode())
        return None

    async def handle(self, socket: ServerConnection) -> None:
        self.connections += 1

        async def read_acks() -> None:
            async for message in socket:
                frame = json.loads(message)
                assert frame["type"] == "ack"
                self.acked.append(frame["command_id"])

        reader = asyncio.create_task(read_acks())
        sent: set[str] = set()
        try:
            while not reader.done():
                for cmd in self.waiting():
                    if cmd["command_id"] not in sent:
                        sent.add(cmd["command_id"])
                        await socket.send(json.dumps(cmd))
                if self.drop.is_set():
                    self.drop.clear()
                    await socket.close(1001, "restarting")
                    return
                await asyncio.sleep(0.01)
        finally:
            reader.cancel()


@pytest.fixture
async def server() -> AsyncIterator[CommandServer]:
    state = CommandServer()
    async with serve(state.handle, "127.0.0.1", 0, process_request=state.check) as running_:
        port = next(iter(running_.sockets)).getsockname()[1]
        state.url = f"http://127.0.0.1:{port}"
        yield state


async def wait_until(check: Any) -> None:
    """Poll ``check`` (state another task changes) for up to 5 s."""
    async with asyncio.timeout(5):
        while not check():  # noqa: ASYNC110 - the server's lists have no event to wait on
            await asyncio.sleep(0.01)


async def test_commands_are_acked_after_the_body_and_not_repeated_after_a_reconnect(
    server: CommandServer,
) -> None:
    server.commands += [command(1), command(2)]
    handled: list[Command] = []
    async with AsyncLoomClient(server.url, TOKEN, device_id=DEVICE, retry=FAST) as loom:
        async with contextlib.aclosing(loom.commands()) as stream:
            async for cmd in stream:
                handled.append(cmd)
                if cmd.command_id == "cmd-2":
                    # the connection drops before this command's ack goes out
                    server.drop.set()
                    await wait_until(lambda: not server.drop.is_set())
                    await asyncio.sleep(0.05)
                    server.commands.append(command(3))
                if cmd.command_id == "cmd-3":
                    await cmd.ack()
                    break
        await wait_until(lambda: "cmd-3" in server.acked)
    assert [c.command_id for c in handled] == ["cmd-1", "cmd-2", "cmd-3"]
    assert handled[0].type == "device.command.app.launch"
    assert handled[0].data["app_name"] == "app-1"
    assert handled[2].sequence == 3
    assert server.connections == 2
    assert sorted(set(server.acked)) == ["cmd-1", "cmd-2", "cmd-3"]  # cmd-2 acked on resend


async def test_a_command_whose_handler_fails_comes_again(server: CommandServer) -> None:
    server.commands.append(command(1))
    async with AsyncLoomClient(server.url, TOKEN, device_id=DEVICE, retry=FAST) as loom:

        async def failing_handler() -> None:
            async with contextlib.aclosing(loom.commands()) as stream:
                async for _ in stream:
                    raise RuntimeError("handler failed")

        with pytest.raises(RuntimeError):
            await failing_handler()
        assert server.acked == []
        async with contextlib.aclosing(loom.commands()) as stream:
            async for again in stream:
                assert again.command_id == "cmd-1"
                await again.ack()
                break
        await wait_until(lambda: server.acked == ["cmd-1"])


async def test_without_auto_ack_only_an_explicit_ack_counts(server: CommandServer) -> None:
    server.commands += [command(1), command(2)]
    seen: list[str] = []
    async with AsyncLoomClient(server.url, TOKEN, device_id=DEVICE, retry=FAST) as loom:
        async with contextlib.aclosing(loom.commands(auto_ack=False)) as stream:
            async for cmd in stream:
                seen.append(cmd.command_id)
                if cmd.command_id == "cmd-2":
                    await cmd.ack()
                    break
        await wait_until(lambda: server.acked == ["cmd-2"])
    assert seen == ["cmd-1", "cmd-2"]


async def test_a_refused_token_raises_instead_of_reconnecting(server: CommandServer) -> None:
    async with AsyncLoomClient(server.url, "loom_wrong", device_id=DEVICE, retry=FAST) as loom:
        with pytest.raises(Rejected) as caught:
            async for _ in loom.commands():
                pass
    assert caught.value.status == 401
    assert caught.value.detail == "unknown or revoked token"


async def test_the_stream_waits_for_a_server_that_is_not_up_yet() -> None:
    state = CommandServer(commands=[command(1)])
    async with serve(state.handle, "127.0.0.1", 0, process_request=state.check) as probe:
        port = next(iter(probe.sockets)).getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    async with AsyncLoomClient(url, TOKEN, device_id=DEVICE, retry=FAST) as loom:
        stream = loom.commands()
        first = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0.3)  # connection refused a few times meanwhile
        assert not first.done()
        async with serve(state.handle, "127.0.0.1", port, process_request=state.check):
            got = await asyncio.wait_for(first, 10)
            assert got.command_id == "cmd-1"
            await got.ack()
            await wait_until(lambda: state.acked == ["cmd-1"])
            await stream.aclose()


async def test_long_poll_gets_commands_and_acks_them_over_http() -> None:
    with running() as ingest:
        ingest.commands += [command(1), command(2)]
        ingest.answer(503, {"status": 503, "detail": "busy"}, {"Retry-After": "0"})
        seen: list[Command] = []
        async with AsyncLoomClient(ingest.url, TOKEN, device_id=DEVICE, retry=FAST) as loom:
            stream = loom.commands(transport="poll", wait=1)
            async with contextlib.aclosing(stream):
                async for cmd in stream:
                    seen.append(cmd)
                    if cmd.command_id == "cmd-2":
                        await cmd.ack()
                        break
            result = await loom.respond(seen[-1], data={"status": "succeeded"})
    assert [c.command_id for c in seen] == ["cmd-1", "cmd-2"]
    assert ingest.acked == ["cmd-1", "cmd-2"]
    polls = [r for r in ingest.requests if r.path.endswith("/commands/next")]
    assert polls[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert len(polls) == 2  # the 503 was retried
    response = ingest.events()[-1]
    assert result.accepted
    assert response["id"] == result.id
    assert response["type"] == "device.response.command.status"
    assert response["source"] == f"/devices/{DEVICE}"
    assert response["data"]["command_id"] == "cmd-2"
    assert response["data"]["command_type"] == "device.command.app.launch"
    assert response["data"]["status"] == "succeeded"
    assert response["data"]["device_id"] == DEVICE


def test_commands_need_the_device_id() -> None:
    loom = AsyncLoomClient("http://ingest", TOKEN)
    with pytest.raises(ClientError, match="device_id"):
        loom.commands()
