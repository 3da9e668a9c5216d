"""What keeps remote control safe and bounded, on real Kafka and PostgreSQL: a revoked
token or a deleted device loses its open connections at once, a disabled dangerous type
is not delivered even when queued before, an expired command stays expired, an answer
stops at its byte budget, and a slow broker neither starves ingestion nor keeps the
admin waiting long.

The device connections run on a second ingest replica (real uvicorn) whose token checks
are cached for 30 s and whose fallback poll is a minute long: what reaches them within
seconds reached them by PostgreSQL NOTIFY.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient
from websockets.exceptions import InvalidStatus

from functions.commands.handler import handle as record_answer
from functions.ingest import IngestSettings, create_app
from loom.settings import LoomSettings
from loom.testing import FunctionHarness
from tests.integration.command_helpers import (
    ACK_TIMEOUT,
    ack,
    audit,
    bearer,
    closed_with,
    from_topic,
    function_settings,
    issued,
    long_poll,
    nothing_comes,
    post_answer,
    receive,
    running_replica,
    stream,
)
from tests.integration.ingest_helpers import assert_problem, register, running_server

SHELL = {"type_": "device.command.shell.execute", "command": "uptime"}


@pytest.fixture(scope="module")
def replica(ingest_settings: IngestSettings) -> Iterator[str]:
    with running_replica(ingest_settings) as url:
        yield url


def test_rotating_a_token_closes_what_is_open_with_it_at_once(
    client: TestClient, admin: str, device: dict[str, Any], replica: str
) -> None:
    did = device["device_id"]
    polled: list[httpx.Response] = []
    waiting = threading.Thread(daemon=True, target=lambda: polled.append(httpx.get(
        f"{replica}/devices/{did}/commands/next", params={"wait": 30},
        headers=bearer(device["token"]), timeout=40)))  # fmt: skip
    with stream(replica, device) as ws:
        nothing_comes(ws, 0.5)  # the replica has checked the token (and keeps it 30 s)
        waiting.start()
        time.sleep(0.5)
        rotated = client.post(f"/devices/{did}/token", headers=bearer(admin))
        assert rotated.status_code == 200, rotated.text
        started = time.monotonic()
        code, frames = closed_with(ws, within=10)
        assert time.monotonic() - started < 5
    assert code == 1008
    assert [(f["type"], "revoked" in f["detail"]) for f in frames] == [("error", True)]
    waiting.join(40)
    assert_problem(polled[0], 401, "revoked")  # the waiting long-poll, too
    command = issued(client, admin, did)
    with pytest.raises(InvalidStatus):
        stream(replica, device)
    with stream(replica, device, token=rotated.json()["token"]) as ws:
        assert receive(ws)["command_id"] == command["command_id"]


def test_deleting_a_device_closes_its_connection_before_anything_is_sent_again(
    client: TestClient, admin: str, device: dict[str, Any], replica: str
) -> None:
    did = device["device_id"]
    command = issued(client, admin, did)
    with stream(replica, device) as ws:
        assert receive(ws)["command_id"] == command["command_id"]  # unacked: it would come again
        assert client.delete(f"/devices/{did}", headers=bearer(admin)).status_code == 200
        code, frames = closed_with(ws, within=ACK_TIMEOUT - 1)
    assert code == 1008
    assert [f["type"] for f in frames] == ["error"]
    assert audit(client, admin, did, command["command_id"])["delivery_attempts"] == 1


def test_disabling_a_dangerous_type_fails_its_commands_still_waiting(
    client: TestClient, admin: str, device: dict[str, Any], ingest_settings: IngestSettings
) -> None:
    did = device["device_id"]
    allowed = f"/devices/{did}/commands/allowed"
    client.put(allowed, headers=bearer(admin), json={"allowed": [SHELL["type_"]]})
    shell, launch = issued(client, admin, did, **SHELL), issued(client, admin, did)
    sent = long_poll(client, device, wait=0).json()["commands"]
    assert [c["command_id"] for c in sent] == [shell["command_id"], launch["command_id"]]

    disabled = client.put(allowed, headers=bearer(admin), json={"allowed": []})
    assert disabled.json() == {"device_id": did, "allowed": [],
                               "failed_commands": [shell["command_id"]]}  # fmt: skip
    again = long_poll(client, device, wait=0).json()["commands"]
    assert [c["command_id"] for c in again] == [launch["command_id"]]
    row = audit(client, admin, did, shell["command_id"])
    assert (row["status"], row["delivery_attempts"]) == ("failed", 1)
    assert row["result"]["code"] == "command_disabled"
    assert "was disabled for this device" in row["result"]["message"]
    late = client.post(f"/devices/{did}/commands/{shell['command_id']}/ack",
                       headers=bearer(device["token"]))  # fmt: skip
    assert late.status_code == 200, late.text
    assert (late.json()["status"], late.json()["acked_at"]) == ("failed", None)
    assert "disabled" in late.json()["detail"]
    client.post(f"/devices/{did}/commands/{launch['command_id']}/ack",
                headers=bearer(device["token"]))  # fmt: skip

    # where the queue is read, too: one that waits though its type is off is never sent
    client.put(allowed, headers=bearer(admin), json={"allowed": [SHELL["type_"]]})
    queued = issued(client, admin, did, **SHELL)
    with psycopg.connect(ingest_settings.database_url, autocommit=True) as conn:
        conn.execute("UPDATE devices SET allowed_commands = '{}' WHERE device_id = %s", (did,))
    assert long_poll(client, device, wait=0).status_code == 204
    row = audit(client, admin, did, queued["command_id"])
    assert (row["status"], row["delivery_attempts"]) == ("failed", 0)


async def test_an_expired_command_stays_expired_when_acked_or_answered_late(
    client: TestClient, admin: str, device: dict[str, Any], replica: str,
    settings: LoomSettings, ingest_settings: IngestSettings,
) -> None:  # fmt: skip
    did = device["device_id"]
    command = issued(client, admin, did)
    assert long_poll(client, device, wait=0).json()["commands"][0]["command_id"] == (
        command["command_id"])  # fmt: skip
    with psycopg.connect(ingest_settings.database_url, autocommit=True) as conn:
        conn.execute("UPDATE device_commands SET expires_at = now() - interval '1 s'"
                     " WHERE command_id = %s", (command["command_id"],))  # fmt: skip

    late = client.post(f"/devices/{did}/commands/{command['command_id']}/ack",
                       headers=bearer(device["token"]))  # fmt: skip
    assert late.status_code == 200, late.text
    assert (late.json()["status"], late.json()["acked_at"]) == ("expired", None)
    assert "expired before the device acknowledged it" in late.json()["detail"]
    with stream(replica, device) as ws:
        ack(ws, command["command_id"])
        said = receive(ws)
    assert (said["type"], said["command_id"]) == ("error", command["command_id"])
    assert "expired" in said["detail"]

    running = post_answer(client, device, "device.response.command.status",
                          command_id=command["command_id"], status="running")  # fmt: skip
    async with FunctionHarness(record_answer, settings=function_settings(ingest_settings)) as fn:
        await fn.call(from_topic(settings, "device.response.command.status", running))
    row = audit(client, admin, did, command["command_id"])
    assert (row["status"], row["acked_at"], row["result"]["status"]) == ("expired", None, "running")


def test_a_long_poll_answer_and_an_audit_page_stop_at_their_byte_budget(
    ingest_settings: IngestSettings, admin: str
) -> None:
    budget = 150_000
    small = ingest_settings.model_copy(update={"ingest_command_response_max_bytes": budget})
    with TestClient(create_app(small)) as client:
        device = register(client, admin)
        did = device["device_id"]
        ids = [issued(client, admin, did, type_="device.command.clipboard.send",
                      content="x" * size)["command_id"]
               for size in (60_000, 60_000, 60_000, 200_000)]  # fmt: skip
        batches = []
        while (answer := long_poll(client, device, wait=0, limit=100)).status_code == 200:
            batches.append([c["command_id"] for c in answer.json()["commands"]])
            for command_id in batches[-1]:
                client.post(f"/devices/{did}/commands/{command_id}/ack",
                            headers=bearer(device["token"]))  # fmt: skip
            assert len(batches) < 5
        # two fit; the one over the budget comes alone
        assert batches == [ids[:2], [ids[2]], [ids[3]]]

        pages: list[list[str]] = []
        cursor: dict[str, str] = {}
        while True:
            page = client.get(f"/devices/{did}/commands", params={"limit": 500, **cursor},
                              headers=bearer(admin)).json()  # fmt: skip
            pages.append([c["command_id"] for c in page["items"]])
            if page["next_cursor"] is None:
                break
            cursor = {"cursor": page["next_cursor"]}
        assert pages == [[ids[3]], [ids[2], ids[1]], [ids[0]]]


def test_a_slow_kafka_answers_503_soon_and_starves_no_other_request(
    client: TestClient, admin: str, ingest_settings: IngestSettings
) -> None:
    """A broker that takes no record in time (the replica's command topics are not there:
    it waits for them): every issue waits out the delivery timeout, and there are more
    of them than the connections that check tokens."""
    slow = ingest_settings.model_copy(update={
        "kafka_topic_prefix": f"missing-{uuid.uuid4().hex[:8]}",
        "ingest_delivery_timeout_seconds": 3.0,
    })  # fmt: skip
    devices = [register(client, admin) for _ in range(13)]
    idle = devices.pop()

    def issue_there(url: str, device: dict[str, Any]) -> tuple[float, httpx.Response]:
        started = time.monotonic()
        answer = httpx.post(f"{url}/devices/{device['device_id']}/commands", timeout=60,
                            json={"type": "device.command.app.launch",
                                  "data": {"app_identifier": "com.apple.Safari"}},
                            headers=bearer(admin))  # fmt: skip
        return time.monotonic() - started, answer

    with running_server(slow) as url, ThreadPoolExecutor(len(devices)) as threads:
        pending = [threads.submit(issue_there, url, d) for d in devices]
        time.sleep(1.0)  # each issue waits for Kafka, or for a connection, by now
        started = time.monotonic()
        with httpx.Client(base_url=url, timeout=60) as there:
            polled = long_poll(there, idle, wait=0)
        assert (polled.status_code, time.monotonic() - started < 2.5) == (204, True)
        answers = [future.result() for future in pending]
    for took, answer in answers:
        assert_problem(answer, 503)
        assert took < 3.0 + slow.ingest_command_issue_wait_seconds + 2
    listed = client.get(f"/devices/{devices[0]['device_id']}/commands", headers=bearer(admin))
    assert listed.json()["items"] == []
