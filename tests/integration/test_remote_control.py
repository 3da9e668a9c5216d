"""Remote control end to end on real Kafka and PostgreSQL: the admin issues commands, a
device receives them over its WebSocket or long-poll and answers through the front door,
and the ``commands`` and ``sync`` functions write the answers and broadcasts into the
devices' queues.

The WebSocket side runs on a second ingest replica (real uvicorn) whose fallback poll is
a minute long: a command issued through the first one reaches it in seconds only by
PostgreSQL NOTIFY.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect
from websockets.exceptions import InvalidStatus

from functions.commands.handler import handle as record_answer
from functions.ingest import IngestSettings, create_app
from functions.sync.handler import handle as fan_out
from loom.services._process import free_port
from loom.settings import LoomSettings
from loom.testing import FunctionHarness
from tests.integration.command_helpers import (
    ACK_TIMEOUT,
    ack,
    audit,
    bearer,
    from_topic,
    function_settings,
    issue,
    issued,
    nothing_comes,
    post_answer,
    receive,
    running_replica,
    stream,
)
from tests.integration.ingest_helpers import assert_problem, consume_all, post_structured, register


@pytest.fixture(scope="module")
def replica(ingest_settings: IngestSettings) -> Iterator[str]:
    """A second ingest replica: acks time out after 3 s, its own poll waits a minute."""
    with running_replica(ingest_settings) as url:
        yield url


async def test_a_command_reaches_the_device_and_its_answer_the_audit_log(
    client: TestClient, admin: str, device: dict[str, Any], replica: str,
    settings: LoomSettings, ingest_settings: IngestSettings,
) -> None:  # fmt: skip
    did = device["device_id"]
    with stream(replica, device) as ws:
        nothing_comes(ws, 0.5)
        started = time.monotonic()
        command = issued(client, admin, did, app_identifier="com.apple.Safari")
        frame = receive(ws)
        assert time.monotonic() - started < 10  # NOTIFY, not the replica's one-minute poll
        assert command["status"] == "queued"
        assert command["type"] == "device.command.app.launch"
        assert frame["type"] == "command"
        assert (frame["command_id"], frame["sequence"]) == (command["command_id"],
                                                            command["sequence"])  # fmt: skip
        event = frame["event"]
        assert event["specversion"] == "1.0"
        assert event["id"] == command["command_id"]
        assert event["type"] == "device.command.app.launch"
        assert event["datacontenttype"] == "application/json"
        assert event["time"]
        assert event["data"]["app_identifier"] == "com.apple.Safari"
        assert event["data"]["command_id"] == command["command_id"]
        assert (event["data"]["device_id"], event["data"]["issued_by"]) == (did, "tests")
        ack(ws, command["command_id"])
        nothing_comes(ws, 0.5)
    row = audit(client, admin, did, command["command_id"])
    assert row["status"] == "acked"
    assert row["issued_by"] == "tests"
    assert row["delivery_attempts"] == 1
    assert row["delivered_at"]
    assert row["acked_at"]

    record = consume_all(settings, "device.command.app.launch")
    assert command["command_id"] in {dict(m.headers())["ce_id"].decode() for m in record}

    answer_id = post_answer(client, device, "device.response.command.status",
                            command_id=command["command_id"], status="succeeded",
                            detail="Safari is open", exit_code=0)  # fmt: skip
    answer = from_topic(settings, "device.response.command.status", answer_id)
    async with FunctionHarness(record_answer, settings=function_settings(ingest_settings)) as fn:
        assert await fn.call(answer) == []
        await fn.call(answer)  # delivered twice: the same row
        row = audit(client, admin, did, command["command_id"])
        assert row["status"] == "succeeded"
        assert row["result"]["detail"] == "Safari is open"
        assert row["result"]["exit_code"] == 0
        assert row["responded_at"].startswith("2026-11-25T08:15:30")
        # progress that comes late does not undo the outcome
        late = replace(answer, id=str(uuid.uuid4()),
                       data={**answer.data, "status": "running", "detail": "starting"})  # fmt: skip
        await fn.call(late)
    assert audit(client, admin, did, command["command_id"])["status"] == "succeeded"


async def test_shell_output_and_errors_settle_their_commands(
    client: TestClient, admin: str, device: dict[str, Any], settings: LoomSettings,
    ingest_settings: IngestSettings,
) -> None:  # fmt: skip
    did = device["device_id"]
    client.put(f"/devices/{did}/commands/allowed", headers=bearer(admin),
               json={"allowed": ["device.command.shell.execute"]})  # fmt: skip
    shell = issued(client, admin, did, type_="device.command.shell.execute", command="false")
    launch = issued(client, admin, did)
    chunk = post_answer(client, device, "device.response.shell.output",
                        command_id=shell["command_id"], stdout="", stderr="boom\n",
                        exit_code=1, is_final=True)  # fmt: skip
    error = post_answer(client, device, "device.response.error", command_id=launch["command_id"],
                        code="app_missing", message="no such app")  # fmt: skip
    async with FunctionHarness(record_answer, settings=function_settings(ingest_settings)) as fn:
        await fn.call(from_topic(settings, "device.response.shell.output", chunk))
        await fn.call(from_topic(settings, "device.response.error", error))
    failed = audit(client, admin, did, shell["command_id"])
    assert (failed["status"], failed["result"]["stderr"]) == ("failed", "boom\n")
    assert audit(client, admin, did, launch["command_id"])["result"]["code"] == "app_missing"


async def test_another_device_cannot_answer_a_command(
    client: TestClient, admin: str, device: dict[str, Any], settings: LoomSettings,
    ingest_settings: IngestSettings,
) -> None:  # fmt: skip
    command = issued(client, admin, device["device_id"])
    intruder = register(client, admin)
    forged = post_answer(client, intruder, "device.response.command.status",
                         command_id=command["command_id"], status="succeeded")  # fmt: skip
    async with FunctionHarness(record_answer, settings=function_settings(ingest_settings)) as fn:
        await fn.call(from_topic(settings, "device.response.command.status", forged))
    row = audit(client, admin, device["device_id"], command["command_id"])
    assert (row["status"], row["result"]) == ("queued", None)


def test_an_unacked_command_comes_again_after_a_reconnect_or_the_ack_timeout(
    client: TestClient, admin: str, device: dict[str, Any], replica: str
) -> None:
    did = device["device_id"]
    command = issued(client, admin, did)
    with stream(replica, device) as ws:
        assert receive(ws)["command_id"] == command["command_id"]
    with stream(replica, device) as ws:  # reconnected without acking
        again = receive(ws)
        assert again["command_id"] == command["command_id"]
        assert audit(client, admin, did, command["command_id"])["delivery_attempts"] == 2
        started = time.monotonic()
        assert receive(ws, timeout=ACK_TIMEOUT + 5)["command_id"] == command["command_id"]
        assert time.monotonic() - started >= ACK_TIMEOUT - 0.5
        ack(ws, command["command_id"])
        nothing_comes(ws, ACK_TIMEOUT + 1)
    row = audit(client, admin, did, command["command_id"])
    assert (row["status"], row["delivery_attempts"]) == ("acked", 3)


def test_commands_arrive_in_order_one_unacked_at_a_time(
    client: TestClient, admin: str, device: dict[str, Any], replica: str
) -> None:
    did = device["device_id"]
    commands = [issued(client, admin, did, app_identifier=f"app.{i}") for i in range(4)]
    sequences = [c["sequence"] for c in commands]
    assert sequences == sorted(sequences)
    assert len(set(sequences)) == 4
    with stream(replica, device) as ws:
        for i, command in enumerate(commands):
            frame = receive(ws)
            assert frame["command_id"] == command["command_id"]
            assert frame["event"]["data"]["app_identifier"] == f"app.{i}"
            nothing_comes(ws, 0.7)  # the next waits for this one's ack
            ack(ws, frame["command_id"])
        nothing_comes(ws, 0.5)


def test_a_dangerous_command_is_refused_until_enabled_for_the_device(
    client: TestClient, admin: str, device: dict[str, Any]
) -> None:
    did = device["device_id"]
    shell = {"type_": "device.command.shell.execute", "command": "uptime"}
    assert_problem(issue(client, admin, did, **shell), 403, "not enabled for device")
    allow = client.put(f"/devices/{did}/commands/allowed", headers=bearer(admin),
                       json={"allowed": ["device.command.shell.execute"]})  # fmt: skip
    assert allow.json() == {"device_id": did, "allowed": ["device.command.shell.execute"],
                            "failed_commands": []}  # fmt: skip
    shown = client.get(f"/devices/{did}", headers=bearer(admin)).json()
    assert shown["allowed_commands"] == ["device.command.shell.execute"]
    assert issue(client, admin, did, **shell).status_code == 202
    keys = {"type_": "device.command.keystroke.send", "text": "hello"}
    assert_problem(issue(client, admin, did, **keys), 403, "keystroke.send is not enabled")
    client.put(f"/devices/{did}/commands/allowed", headers=bearer(admin), json={"allowed": []})
    assert_problem(issue(client, admin, did, **shell), 403)
    refused = client.put(f"/devices/{did}/commands/allowed", headers=bearer(admin),
                         json={"allowed": ["device.command.app.launch"]})  # fmt: skip
    assert_problem(refused, 422, "not a dangerous command type")
    forbidden = [c for c in client.get(f"/devices/{did}/commands", headers=bearer(admin))
                 .json()["items"] if c["type"] == "device.command.keystroke.send"]  # fmt: skip
    assert forbidden == []


def test_issuing_checks_type_device_and_data(
    client: TestClient, admin: str, device: dict[str, Any]
) -> None:
    did = device["device_id"]
    assert_problem(issue(client, admin, "no-such-device"), 404, "no device")
    assert_problem(issue(client, admin, did, type_="device.sensor.gps.raw"), 400, "not a command")
    assert_problem(issue(client, admin, did, type_="device.command.nope"), 400)
    bad = issue(client, admin, did, app_identifier="")
    assert_problem(bad, 422, "/app_identifier")
    assert_problem(issue(client, admin, did, app_identifier="x", command_id="mine"), 400)
    as_device = client.post(f"/devices/{did}/commands", headers=bearer(device["token"]),
                            json={"type": "device.command.app.launch", "data": {}})  # fmt: skip
    assert_problem(as_device, 403, "admin token")
    # and not through the front door: a device cannot post a command at all
    posted = post_structured(client, device["token"], {
        "specversion": "1.0", "id": "c-1", "source": f"/devices/{did}",
        "type": "device.command.shell.execute", "data": {"device_id": did, "command": "id",
        "timestamp": "2026-11-25T08:15:30Z", "command_id": "c-1"}})  # fmt: skip
    assert_problem(posted, 400, "devices cannot send it")
    client.delete(f"/devices/{did}", headers=bearer(admin))
    assert_problem(issue(client, admin, did), 404, "deleted")


def test_only_the_device_s_own_token_receives_or_acks_its_commands(
    client: TestClient, admin: str, device: dict[str, Any], replica: str
) -> None:
    did = device["device_id"]
    other = register(client, admin)
    command = issued(client, admin, did)
    for token in (other["token"], admin):
        with pytest.raises(InvalidStatus) as refused:
            stream(replica, device, token=token)
        assert refused.value.response.status_code == 403
        long_poll = client.get(f"/devices/{did}/commands/next", params={"wait": 0},
                               headers=bearer(token))  # fmt: skip
        assert_problem(long_poll, 403)
        acked = client.post(f"/devices/{did}/commands/{command['command_id']}/ack",
                            headers=bearer(token))  # fmt: skip
        assert_problem(acked, 403)
    with (
        pytest.raises(WebSocketDisconnect) as closed,
        client.websocket_connect(f"/devices/{did}/commands/stream?token={other['token']}") as ws,
    ):
        ws.receive_json()
    assert closed.value.code == 1008
    assert audit(client, admin, did, command["command_id"])["status"] == "queued"


def test_the_long_poll_path(
    client: TestClient, admin: str, device: dict[str, Any], replica: str
) -> None:
    did, headers = device["device_id"], bearer(device["token"])
    first, second = issued(client, admin, did), issued(client, admin, did)
    batch = client.get(f"/devices/{did}/commands/next", params={"wait": 5}, headers=headers)
    assert [c["command_id"] for c in batch.json()["commands"]] == [
        first["command_id"], second["command_id"]]  # fmt: skip
    assert batch.json()["commands"][0]["event"]["id"] == first["command_id"]
    again = client.get(f"/devices/{did}/commands/next", params={"limit": 1}, headers=headers)
    assert [c["command_id"] for c in again.json()["commands"]] == [first["command_id"]]
    acked = client.post(f"/devices/{did}/commands/{first['command_id']}/ack", headers=headers)
    assert acked.json()["status"] == "acked"
    rest = client.get(f"/devices/{did}/commands/next", headers=headers).json()["commands"]
    assert [c["command_id"] for c in rest] == [second["command_id"]]
    client.post(f"/devices/{did}/commands/{second['command_id']}/ack", headers=headers)
    started = time.monotonic()
    empty = client.get(f"/devices/{did}/commands/next", params={"wait": 1}, headers=headers)
    assert empty.status_code == 204
    assert time.monotonic() - started >= 0.9
    missing = client.post(f"/devices/{did}/commands/nope/ack", headers=headers)
    assert_problem(missing, 404, "no command 'nope'")

    # a waiting long-poll on the other replica answers as soon as a command is issued
    got: list[httpx.Response] = []
    waiter = threading.Thread(target=lambda: got.append(httpx.get(
        f"{replica}/devices/{did}/commands/next", params={"wait": 30}, headers=headers,
        timeout=40)))  # fmt: skip
    started = time.monotonic()
    waiter.start()
    time.sleep(0.5)
    third = issued(client, admin, did)
    waiter.join(40)
    assert time.monotonic() - started < 10
    assert [c["command_id"] for c in got[0].json()["commands"]] == [third["command_id"]]
    row = audit(client, admin, did, first["command_id"])
    assert (row["status"], row["delivery_attempts"]) == ("acked", 2)
    listed = client.get(f"/devices/{did}/commands", params={"status": ["acked"]},
                        headers=bearer(admin)).json()  # fmt: skip
    assert [c["command_id"] for c in listed["items"]] == [second["command_id"],
                                                         first["command_id"]]  # fmt: skip
    page = client.get(f"/devices/{did}/commands", params={"limit": 2}, headers=bearer(admin))
    older = client.get(f"/devices/{did}/commands", headers=bearer(admin),
                       params={"limit": 2, "cursor": page.json()["next_cursor"]})  # fmt: skip
    assert [c["command_id"] for c in older.json()["items"]] == [first["command_id"]]


def test_a_command_past_its_retention_expires_instead_of_being_delivered(
    client: TestClient, admin: str, device: dict[str, Any], ingest_settings: IngestSettings
) -> None:
    did = device["device_id"]
    command = issued(client, admin, did)
    with psycopg.connect(ingest_settings.database_url, autocommit=True) as conn:
        conn.execute("UPDATE device_commands SET expires_at = now() - interval '1 s',"
                     " issued_at = now() - interval '1 day 1 s' WHERE command_id = %s",
                     (command["command_id"],))  # fmt: skip
    empty = client.get(f"/devices/{did}/commands/next", params={"wait": 0},
                       headers=bearer(device["token"]))  # fmt: skip
    assert empty.status_code == 204
    row = audit(client, admin, did, command["command_id"])
    assert (row["status"], row["delivery_attempts"]) == ("expired", 0)


async def test_a_sync_broadcast_reaches_the_other_devices_but_not_the_sender(
    client: TestClient, admin: str, settings: LoomSettings, ingest_settings: IngestSettings,
) -> None:  # fmt: skip
    sender, receiver, gone = (register(client, admin) for _ in range(3))
    client.delete(f"/devices/{gone['device_id']}", headers=bearer(admin))
    broadcast = post_answer(client, sender, "device.sync.clipboard.broadcast",
                            origin_device_id=sender["device_id"], content="hello from the laptop",
                            content_type="text/plain")  # fmt: skip
    event = from_topic(settings, "device.sync.clipboard.broadcast", broadcast)
    async with FunctionHarness(fan_out, settings=function_settings(ingest_settings)) as fn:
        await fn.call(event)
        await fn.call(event)  # redelivered: no second item
    got = client.get(f"/devices/{receiver['device_id']}/commands/next", params={"wait": 5},
                     headers=bearer(receiver["token"])).json()["commands"]  # fmt: skip
    assert len(got) == 1
    item = got[0]["event"]
    assert item["type"] == "device.sync.clipboard.broadcast"
    assert item["source"] == f"/devices/{sender['device_id']}"
    assert item["data"]["content"] == "hello from the laptop"
    row = audit(client, admin, receiver["device_id"], got[0]["command_id"])
    assert row["issued_by"] == sender["device_id"]
    nothing = client.get(f"/devices/{sender['device_id']}/commands/next", params={"wait": 0},
                         headers=bearer(sender["token"]))  # fmt: skip
    assert nothing.status_code == 204
    kept = client.get(f"/devices/{gone['device_id']}/commands", headers=bearer(admin)).json()
    assert kept["items"] == []


def test_kafka_down_answers_503_and_queues_nothing(
    ingest_settings: IngestSettings, admin: str
) -> None:
    down = ingest_settings.model_copy(update={
        "kafka_bootstrap_servers": f"127.0.0.1:{free_port()}",
        "ingest_delivery_timeout_seconds": 2.0,
    })  # fmt: skip
    with TestClient(create_app(down)) as client:
        device = register(client, admin)
        refused = issue(client, admin, device["device_id"])
        assert_problem(refused, 503)
        assert int(refused.headers["retry-after"]) >= 1
        listed = client.get(f"/devices/{device['device_id']}/commands", headers=bearer(admin))
        assert listed.json()["items"] == []
