"""The device SDK and `loom send` against the real ingest (uvicorn on a real socket),
real Kafka and real PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from functions.ingest import IngestSettings, create_app
from loom.cli import app
from loom.client import AsyncLoomClient, LoomClient, Rejected, RetryPolicy
from loom.client.commands import Transport
from loom.settings import LoomSettings
from tests.integration.ingest_helpers import consume_all, data_of, ids_in, running_server
from tests.loom.client.fake_ingest import closed_port

GPS_TOPIC = "device.sensor.gps.raw"
FAST = RetryPolicy(attempts=3, base_seconds=0.05, max_seconds=0.2)


def gps(**extra: Any) -> dict[str, Any]:
    return {"latitude": 52.52, "longitude": 13.405, "accuracy": 4.0, **extra}


@pytest.fixture(scope="module")
def ingest_url(ingest_settings: IngestSettings) -> Iterator[str]:
    with running_server(ingest_settings) as url:
        yield url


@contextlib.contextmanager
def ingest_on(settings: IngestSettings, port: int) -> Iterator[str]:
    """Ingest under uvicorn on ``port`` (to bring back a server that was away)."""
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port,
                            log_level="warning", lifespan="on")  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "ingest did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def test_single_and_batch_sends_reach_kafka(
    ingest_url: str, device: dict[str, Any], settings: LoomSettings
) -> None:
    with LoomClient(ingest_url, device["token"], device_id=device["device_id"]) as loom:
        one = loom.send(GPS_TOPIC, gps())
        batch = loom.send_batch(
            [loom.event(GPS_TOPIC, gps(n=n)) for n in range(3)]
            + [loom.event(GPS_TOPIC, gps(latitude=99))]
        )
        with pytest.raises(Rejected) as caught:
            loom.send(GPS_TOPIC, gps(latitude=99))
    assert one.topic == GPS_TOPIC
    assert [r.accepted for r in batch.results] == [True, True, True, False]
    refused = batch.rejected[0]
    assert refused.status == 422
    assert refused.errors[0]["pointer"] == "/latitude"
    assert caught.value.status == 422
    assert caught.value.errors[0]["pointer"] == "/latitude"
    assert "/latitude" in caught.value.detail
    stored = ids_in(consume_all(settings, GPS_TOPIC))
    assert {one.id, *(r.id for r in batch.accepted)} <= stored
    assert refused.id not in stored


def test_queued_while_ingest_is_away_then_flushed_in_order(
    ingest_settings: IngestSettings,
    device: dict[str, Any],
    settings: LoomSettings,
    tmp_path: Path,
) -> None:
    port = closed_port()
    queue = tmp_path / "queue.db"
    url = f"http://127.0.0.1:{port}"
    with LoomClient(url, device["token"], device_id=device["device_id"], queue_path=queue,
                    retry=FAST) as loom:  # fmt: skip
        results = [loom.send(GPS_TOPIC, gps(n=n), queue=True) for n in range(4)]
        assert all(r.queued for r in results)
        assert len(loom.queue) == 4
    ids = [r.id for r in results]
    with (
        ingest_on(ingest_settings, port),
        LoomClient(url, device["token"], device_id=device["device_id"], queue_path=queue) as loom,
    ):  # a new process, as it were: only the file is shared
        flushed = loom.flush()
        assert flushed.sent == 4
        assert len(loom.queue) == 0
    ours = [m for m in consume_all(settings, GPS_TOPIC) if m.key() == device["device_id"].encode()]
    assert [dict(m.headers())["ce_id"].decode() for m in ours] == ids
    assert [data_of(m)["n"] for m in ours] == [0, 1, 2, 3]


def test_loom_send_of_a_jsonl_file_reports_the_bad_line(
    ingest_url: str, device: dict[str, Any], settings: LoomSettings, tmp_path: Path
) -> None:
    marks = [str(uuid.uuid4()) for _ in range(4)]
    lines = [gps(message_id=m, timestamp="2026-11-25T08:15:30Z") for m in marks]
    lines[2]["latitude"] = 99
    file = tmp_path / "history.jsonl"
    file.write_text("".join(json.dumps(line) + "\n" for line in lines))
    env = {"LOOM_URL": ingest_url, "LOOM_TOKEN": device["token"], "COLUMNS": "200"}
    done = CliRunner().invoke(
        app, ["send", "--type", GPS_TOPIC, "--device-id", device["device_id"], "--batch", "2",
              str(file)], env=env,
    )  # fmt: skip
    assert done.exit_code == 1, done.output
    (row,) = [line for line in done.output.splitlines() if line.startswith("│ 3 ")]
    assert "422" in row
    assert "/latitude" in row
    stored = [data_of(m) for m in consume_all(settings, GPS_TOPIC)]
    sent = {d["message_id"] for d in stored if d.get("message_id") in marks}
    assert sent == {marks[0], marks[1], marks[3]}


@pytest.mark.parametrize("transport", ["websocket", "poll"])
def test_commands_arrive_and_are_answered(
    transport: Transport,
    client: TestClient,
    admin: str,
    ingest_url: str,
    device: dict[str, Any],
    settings: LoomSettings,
) -> None:
    device_id = device["device_id"]
    admin_auth = {"authorization": f"Bearer {admin}"}
    issued = client.post(
        f"/devices/{device_id}/commands", headers=admin_auth,
        json={"type": "device.command.app.launch", "data": {"app_identifier": "org.loom.test"}},
    )  # fmt: skip
    assert issued.status_code == 202, issued.text
    command_id = issued.json()["command_id"]

    async def handle_one() -> tuple[Any, str]:
        loom = AsyncLoomClient(ingest_url, device["token"], device_id=device_id)
        async with loom, contextlib.aclosing(loom.commands(transport=transport, wait=5)) as stream:
            async for command in stream:
                await command.ack()
                answer = await loom.respond(command, data={"status": "succeeded"})
                return command, answer.id
        raise AssertionError("the stream ended")

    command, answer_id = asyncio.run(asyncio.wait_for(handle_one(), 30))
    assert command.command_id == command_id
    assert command.type == "device.command.app.launch"
    assert command.data["app_identifier"] == "org.loom.test"
    record = client.get(f"/devices/{device_id}/commands/{command_id}", headers=admin_auth)
    assert record.json()["status"] in ("acked", "succeeded"), record.text
    (answer,) = [
        data_of(m)
        for m in consume_all(settings, "device.response.command.status")
        if dict(m.headers())["ce_id"].decode() == answer_id
    ]
    assert answer["command_id"] == command_id
    assert answer["command_type"] == "device.command.app.launch"
    assert answer["device_id"] == device_id


def test_a_token_that_is_not_the_devices_is_refused_at_once(
    ingest_url: str, device: dict[str, Any], admin: str
) -> None:
    async def first_command() -> None:
        loom = AsyncLoomClient(ingest_url, admin, device_id=device["device_id"], retry=FAST)
        async with loom, contextlib.aclosing(loom.commands()) as stream:
            async for _ in stream:
                pass

    with pytest.raises(Rejected) as caught:
        asyncio.run(asyncio.wait_for(first_command(), 10))
    assert caught.value.status == 403
