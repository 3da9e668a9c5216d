"""The seed's REST surface, devices API, audio WebSocket, health and metrics."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from loom.catalog import Catalog, default_catalog
from loom.settings import LoomSettings
from tests.integration.ingest_helpers import (
    assert_problem,
    binary_headers,
    consume_all,
    data_of,
    gps,
    ids_in,
    register,
)

SEED_ROUTES = [t for t in default_catalog().ingestable() if t.rest_path]


def test_every_seed_route_exists() -> None:
    paths = {t.rest_path for t in SEED_ROUTES}
    assert paths == {
        "/audio/upload", "/sensor/gps", "/sensor/accelerometer", "/sensor/heartrate",
        "/sensor/power", "/sensor/generic", "/os-events/app-lifecycle", "/os-events/system",
        "/os-events/notifications", "/system/apps/android", "/system/apps/android/usage",
        "/system/metadata",
    }  # fmt: skip


@pytest.mark.parametrize("event_type", SEED_ROUTES, ids=lambda t: t.rest_path)
def test_seed_route_takes_its_golden_examples_to_kafka(
    client: TestClient,
    device: dict[str, Any],
    admin: str,
    settings: LoomSettings,
    catalog: Catalog,
    event_type: Any,
) -> None:
    auth = {"authorization": f"Bearer {device['token']}"}
    sent = []
    for example in catalog.examples(event_type.type):
        payload = example.load()
        if example.valid:
            payload["device_id"] = device["device_id"]
            answer = client.post(event_type.rest_path, json=payload, headers=auth)
            assert answer.status_code == 201, (example.path.name, answer.text)
            body = answer.json()
            assert body["status"] == "success"
            assert body["topic"] == event_type.type
            sent.append(body["message_id"])
        else:  # as the admin, so that the payload is checked exactly as it is
            answer = client.post(event_type.rest_path, json=payload,
                                 headers={"authorization": f"Bearer {admin}"})  # fmt: skip
            assert answer.status_code == 422, (example.path.name, answer.text)
    assert set(sent) <= ids_in(consume_all(settings, event_type.type))


def test_seed_defaults_fill_device_timestamp_and_message_id(
    client: TestClient, device: dict[str, Any], settings: LoomSettings
) -> None:
    answer = client.post(
        "/sensor/heartrate", json={"bpm": 58},
        headers={"authorization": f"Bearer {device['token']}"},
    )  # fmt: skip
    assert answer.status_code == 201, answer.text
    message_id = answer.json()["message_id"]
    (message,) = [
        m for m in consume_all(settings, "device.health.heartrate.raw")
        if dict(m.headers())["ce_id"].decode() == message_id
    ]  # fmt: skip
    data = data_of(message)
    assert data["device_id"] == device["device_id"]
    assert data["schema_version"] == "1.0"
    assert data["timestamp"]
    assert message.key() == device["device_id"].encode()


def test_sensor_batch_routes_each_reading_to_its_type(
    client: TestClient, device: dict[str, Any], settings: LoomSettings
) -> None:
    did = device["device_id"]
    base = {"device_id": did, "timestamp": "2026-11-25T09:00:00Z"}
    readings = [
        {**base, "message_id": str(uuid.uuid4()), "sensor_type": "gps",
         "value": {"latitude": 1.5, "longitude": 2.5}, "accuracy": 3.0},
        {**base, "message_id": str(uuid.uuid4()), "sensor_type": "heartrate", "value": {"bpm": 70}},
        {**base, "message_id": str(uuid.uuid4()), "sensor_type": "light", "value": {"lux": 300},
         "unit": "lx"},
        {**base, "message_id": str(uuid.uuid4()), "sensor_type": "gps", "value": {"latitude": 300}},
    ]  # fmt: skip
    answer = client.post("/sensor/batch", json=readings,
                         headers={"authorization": f"Bearer {device['token']}"})  # fmt: skip
    assert answer.status_code == 207, answer.text
    body = answer.json()
    assert (body["total"], body["processed"], body["failed"]) == (4, 3, 1)
    assert body["results"][3]["status"] == 422
    assert readings[0]["message_id"] in ids_in(consume_all(settings, "device.sensor.gps.raw"))
    hr = ids_in(consume_all(settings, "device.health.heartrate.raw"))
    assert readings[1]["message_id"] in hr
    generic = consume_all(settings, "device.sensor.generic.raw")
    (light,) = [
        m for m in generic if dict(m.headers())["ce_id"].decode() == readings[2]["message_id"]
    ]
    assert data_of(light)["value"] == {"lux": 300}


def test_device_lifecycle(client: TestClient, admin: str) -> None:
    auth = {"authorization": f"Bearer {admin}"}
    created = register(client, admin, name="Watch", device_type="watch", metadata={"os": "wear"})
    did, token = created["device_id"], created["token"]
    assert token.startswith("loom_")
    assert "token" not in client.get(f"/devices/{did}", headers=auth).json()
    again = client.post("/devices", json={"device_id": did, "name": "x"}, headers=auth)
    assert_problem(again, 409, "already registered")
    patched = client.patch(f"/devices/{did}", json={"name": "Left wrist"}, headers=auth)
    assert patched.status_code == 200
    assert patched.json()["name"] == "Left wrist"
    assert patched.json()["metadata"] == {"os": "wear"}

    sent = client.post("/", content=json.dumps(gps(did)), headers=binary_headers(token))
    assert sent.status_code == 202
    activity = {a["device_id"]: a for a in client.get("/devices/activity", headers=auth).json()}
    assert activity[did]["events_total"] >= 1
    assert activity[did]["active"] is True

    rotated = client.post(f"/devices/{did}/token", headers=auth).json()["token"]
    old = client.post("/", content=json.dumps(gps(did)), headers=binary_headers(token))
    assert_problem(old, 401, "unknown or revoked")
    deleted = client.delete(f"/devices/{did}", headers=auth)
    assert deleted.status_code == 200
    assert deleted.json()["deleted_at"] is not None
    after = client.post("/", content=json.dumps(gps(did)), headers=binary_headers(rotated))
    assert_problem(after, 401, "unknown or revoked")
    listed = [d["device_id"] for d in client.get("/devices", headers=auth).json()]
    assert did not in listed
    with_deleted = client.get("/devices", params={"include_deleted": True}, headers=auth).json()
    assert did in [d["device_id"] for d in with_deleted]
    assert_problem(client.get("/devices/nope", headers=auth), 404, "no device 'nope'")


def test_audio_websocket_acks_each_chunk_after_kafka(
    client: TestClient, device: dict[str, Any], settings: LoomSettings
) -> None:
    did = device["device_id"]
    pcm = b"\x00\x01" * 1600
    acks = []
    with client.websocket_connect(f"/audio/stream/{did}?token={device['token']}") as ws:
        for i in range(3):
            chunk = {"message_type": "audio_chunk", "data": {
                "chunk_data": base64.b64encode(pcm).decode(), "sample_rate": 16000,
                "channels": 1, "format": "pcm_s16le", "duration_ms": 100,
                "timestamp": f"2026-11-25T09:00:0{i}Z"}}  # fmt: skip
            ws.send_text(json.dumps(chunk))
        ws.send_bytes(pcm)
        for _ in range(4):
            ack = ws.receive_json()
            assert ack["type"] == "ack", ack
            acks.append(ack["message_id"])
    assert set(acks) <= ids_in(consume_all(settings, "device.audio.raw"))


def test_audio_websocket_closes_on_a_bad_frame(client: TestClient, device: dict[str, Any]) -> None:
    with client.websocket_connect(
        f"/audio/stream/{device['device_id']}?token={device['token']}"
    ) as ws:
        ws.send_text("this is not json")
        error = ws.receive_json()
        assert error["type"] == "error"
        assert "not JSON" in error["detail"]
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert closed.value.code == 1007


def test_audio_websocket_refuses_a_bad_token(client: TestClient, device: dict[str, Any]) -> None:
    with (
        pytest.raises(WebSocketDisconnect) as closed,
        client.websocket_connect(f"/audio/stream/{device['device_id']}?token=loom_wrong") as ws,
    ):
        ws.receive_json()
    assert closed.value.code == 1008


def test_audio_websocket_stops_once_its_token_is_rotated(
    client: TestClient, admin: str, device: dict[str, Any]
) -> None:
    did = device["device_id"]
    pcm = b"\x00\x01" * 1600
    with client.websocket_connect(f"/audio/stream/{did}?token={device['token']}") as ws:
        ws.send_bytes(pcm)
        assert ws.receive_json()["type"] == "ack"
        rotated = client.post(f"/devices/{did}/token", headers={"Authorization": f"Bearer {admin}"})
        assert rotated.status_code == 200, rotated.text
        ws.send_bytes(pcm)
        error = ws.receive_json()
        assert error["type"] == "error"
        assert "revoked" in error["detail"]
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert closed.value.code == 1008


def test_health_readiness_and_metrics(client: TestClient, device: dict[str, Any]) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"kafka": "ok", "database": "ok"}
    client.post("/", content=json.dumps(gps(device["device_id"])),
                headers=binary_headers(device["token"]))  # fmt: skip
    text = client.get("/metrics").text
    assert 'loom_ingest_events_total{outcome="accepted",type="device.sensor.gps.raw"}' in text
    assert 'kafka_messages_sent_total{topic="device.sensor.gps.raw"}' in text
    assert 'http_requests_total{endpoint="/",method="POST",status="202"}' in text
    assert "websocket_connections_total" in text
    assert "loom_ingest_produce_seconds_bucket" in text


def test_openapi_documents_every_route_with_examples(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    for t in SEED_ROUTES:
        body = spec["paths"][t.rest_path]["post"]["requestBody"]["content"]["application/json"]
        assert body["examples"], t.rest_path
        assert "$ref" not in json.dumps(body["schema"])
    assert (
        "application/cloudevents-batch+json" in spec["paths"]["/"]["post"]["requestBody"]["content"]
    )


def test_device_routes_have_a_body_limit(client: TestClient, admin: str) -> None:
    big = {"name": "big", "metadata": {"blob": "x" * 70_000}}
    answer = client.post("/devices", json=big, headers={"authorization": f"Bearer {admin}"})
    assert answer.status_code == 413
    assert answer.headers["content-type"] == "application/problem+json"
