"""Helpers for the remote-control integration tests: issuing, auditing, a device's
WebSocket and long-poll, and the functions' view of an event."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from functions.ingest import IngestSettings
from loom.events import from_kafka
from loom.runtime.event import Event
from loom.settings import LoomSettings
from tests.integration.ingest_helpers import consume_all, post_structured, running_server

ACK_TIMEOUT = 3.0


@contextmanager
def running_replica(ingest_settings: IngestSettings) -> Iterator[str]:
    """A second ingest replica: acks time out after 3 s, its own poll waits a minute."""
    settings = ingest_settings.model_copy(update={
        "ingest_command_ack_timeout_seconds": ACK_TIMEOUT, "ingest_command_poll_seconds": 60.0,
    })  # fmt: skip
    with running_server(settings) as url:
        yield url


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def issue(client: TestClient, admin: str, device_id: str, type_: str = "device.command.app.launch",
          **data: Any) -> httpx.Response:  # fmt: skip
    data = data or {"app_identifier": "com.apple.Safari"}
    return client.post(f"/devices/{device_id}/commands", json={"type": type_, "data": data},
                       headers=bearer(admin))  # fmt: skip


def issued(client: TestClient, admin: str, device_id: str, **data: Any) -> dict[str, Any]:
    answer = issue(client, admin, device_id, **data)
    assert answer.status_code == 202, answer.text
    return dict(answer.json())


def audit(client: TestClient, admin: str, device_id: str, command_id: str) -> dict[str, Any]:
    answer = client.get(f"/devices/{device_id}/commands/{command_id}", headers=bearer(admin))
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def stream(url: str, device: dict[str, Any], token: str | None = None) -> ClientConnection:
    return connect(f"{url.replace('http', 'ws', 1)}/devices/{device['device_id']}/commands/stream",
                   additional_headers=bearer(token or device["token"]))  # fmt: skip


def receive(ws: ClientConnection, timeout: float = 10.0) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(ws.recv(timeout=timeout))
    return frame


def nothing_comes(ws: ClientConnection, within: float) -> None:
    with pytest.raises(TimeoutError):
        ws.recv(timeout=within)


def ack(ws: ClientConnection, command_id: str) -> None:
    ws.send(json.dumps({"type": "ack", "command_id": command_id}))


def closed_with(ws: ClientConnection, within: float) -> tuple[int | None, list[dict[str, Any]]]:
    """The server's close code once it closes ``ws`` (within ``within`` seconds, else
    TimeoutError), and the frames it sent before."""
    frames: list[dict[str, Any]] = []
    deadline = time.monotonic() + within
    while True:
        try:
            frames.append(receive(ws, timeout=max(0.01, deadline - time.monotonic())))
        except ConnectionClosed as closed:
            return (closed.rcvd.code if closed.rcvd else None), frames


def long_poll(client: httpx.Client, device: dict[str, Any], **params: Any) -> httpx.Response:
    return client.get(f"/devices/{device['device_id']}/commands/next", params=params,
                      headers=bearer(device["token"]))  # fmt: skip


def from_topic(settings: LoomSettings, type_: str, event_id: str) -> Event:
    """The event ``event_id`` as the functions get it: read back from its Kafka topic."""
    for message in consume_all(settings, type_):
        if dict(message.headers() or [])["ce_id"].decode() == event_id:
            return Event.from_cloudevent(
                from_kafka(message.headers(), message.key(), message.value())
            )
    raise AssertionError(f"{event_id} is not in {type_}")


def post_answer(client: TestClient, device: dict[str, Any], type_: str, **data: Any) -> str:
    event_id = str(uuid.uuid4())
    did = device["device_id"]
    event = {"specversion": "1.0", "id": event_id, "source": f"/devices/{did}", "type": type_,
             "datacontenttype": "application/json",
             "data": {"device_id": did, "timestamp": "2026-11-25T08:15:30Z", **data}}  # fmt: skip
    answer = post_structured(client, device["token"], event)
    assert answer.status_code == 202, answer.text
    return event_id


def function_settings(ingest_settings: IngestSettings) -> LoomSettings:
    shared = ("database_url", "kafka_bootstrap_servers")
    return LoomSettings(**{name: getattr(ingest_settings, name) for name in shared})
