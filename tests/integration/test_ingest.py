"""Ingest against a real broker and database: every route, every check, every answer."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient

from functions.ingest import IngestSettings, create_app
from loom.settings import LoomSettings
from tests.integration.ingest_helpers import (
    assert_problem,
    binary_headers,
    consume_all,
    data_of,
    gps,
    ids_in,
    post_batch,
    post_structured,
    register,
)

# ── CloudEvents modes ─────────────────────────────────────────────────────


def test_binary_mode_is_in_kafka_when_answered(
    client: TestClient, device: dict[str, Any], settings: LoomSettings
) -> None:
    headers = binary_headers(device["token"])
    answer = client.post("/", content=json.dumps(gps(device["device_id"])), headers=headers)
    assert answer.status_code == 202, answer.text
    assert answer.json()["topic"] == "device.sensor.gps.raw"
    (message,) = [
        m
        for m in consume_all(settings, "device.sensor.gps.raw")
        if dict(m.headers())["ce_id"].decode() == headers["ce-id"]
    ]
    assert message.key() == device["device_id"].encode()
    got = dict(message.headers())
    assert got["ce_partitionkey"] == device["device_id"].encode()
    assert got["ce_source"] == b"/tests"
    assert got["ce_dataschema"].endswith(b"/device/sensor/gps/raw/v1.json")
    assert data_of(message)["latitude"] == 52.52


def test_structured_mode_and_the_events_alias(
    client: TestClient, device: dict[str, Any], settings: LoomSettings
) -> None:
    event = {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "/t",
        "type": "device.health.heartrate.raw",
        "data": {"device_id": device["device_id"], "timestamp": "2026-11-25T08:00:00Z", "bpm": 64},
    }
    answer = post_structured(client, device["token"], event, path="/events")
    assert answer.status_code == 202, answer.text
    assert event["id"] in ids_in(consume_all(settings, "device.health.heartrate.raw"))


def test_batch_reports_each_event_and_stores_only_the_good_ones(
    client: TestClient, device: dict[str, Any], settings: LoomSettings
) -> None:
    good = [
        {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": "/t",
            "type": "device.sensor.gps.raw",
            "data": gps(device["device_id"]),
        }
        for _ in range(3)
    ]
    bad_schema = {**good[0], "id": str(uuid.uuid4()), "data": gps(device["device_id"], latitude=99)}
    no_id = {k: v for k, v in good[0].items() if k != "id"}
    duplicate = dict(good[1])
    batch = [good[0], bad_schema, good[1], no_id, good[2], duplicate]
    answer = post_batch(client, device["token"], batch)
    assert answer.status_code == 207, answer.text
    body = answer.json()
    assert (body["accepted"], body["rejected"]) == (3, 3)
    by_index = {r["index"]: r for r in body["results"]}
    assert [by_index[i]["accepted"] for i in range(6)] == [True, False, True, False, True, False]
    assert by_index[1]["status"] == 422
    assert by_index[1]["retryable"] is False
    assert by_index[1]["problem"]["errors"][0]["pointer"] == "/latitude"
    assert "missing required attribute(s): id" in by_index[3]["problem"]["detail"]
    assert "in the batch twice" in by_index[5]["problem"]["detail"]
    stored = ids_in(consume_all(settings, "device.sensor.gps.raw"))
    assert {e["id"] for e in good} <= stored
    assert bad_schema["id"] not in stored


def test_all_good_batch_is_202(client: TestClient, device: dict[str, Any]) -> None:
    batch = [
        {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": "/t",
            "type": "device.sensor.gps.raw",
            "data": gps(device["device_id"]),
        }
        for _ in range(100)
    ]
    answer = post_batch(client, device["token"], batch)
    assert answer.status_code == 202
    assert answer.json()["accepted"] == 100


# ── malformed input: 400 naming the problem ───────────────────────────────


@pytest.mark.parametrize(
    ("change", "phrase"),
    [
        ({"ce-id": None}, "missing required attribute(s): id"),
        ({"ce-source": None, "ce-type": None}, "missing required attribute(s): source, type"),
        ({"ce-specversion": "0.3"}, "specversion '0.3' is not supported"),
        ({"content-type": "text/plain"}, "content type 'text/plain' is not accepted"),
    ],
)
def test_malformed_binary_events(
    client: TestClient, device: dict[str, Any], change: dict[str, str | None], phrase: str
) -> None:
    headers = binary_headers(device["token"])
    for key, value in change.items():
        headers.pop(key) if value is None else headers.__setitem__(key, value)
    answer = client.post("/", content=json.dumps(gps(device["device_id"])), headers=headers)
    assert_problem(answer, 400, phrase)


def test_broken_json_batch_not_array_and_no_cloudevent(
    client: TestClient, device: dict[str, Any]
) -> None:
    auth = {"authorization": f"Bearer {device['token']}"}
    broken = client.post("/", content=b"{not json", headers=binary_headers(device["token"]))
    assert_problem(broken, 400, "body is not valid JSON")
    not_array = client.post(
        "/", content=b"{}", headers={**auth, "content-type": "application/cloudevents-batch+json"}
    )
    assert_problem(not_array, 400, "must be a JSON array")
    plain = client.post("/", content=b"{}", headers={**auth, "content-type": "application/json"})
    assert_problem(plain, 400, "not a CloudEvent")


def test_unknown_and_derived_types_are_400(client: TestClient, device: dict[str, Any]) -> None:
    body = json.dumps(gps(device["device_id"]))
    unknown = client.post(
        "/", content=body, headers=binary_headers(device["token"], "device.nope.raw")
    )
    problem = assert_problem(unknown, 400, "'device.nope.raw' is not an event type")
    assert problem["type"].endswith("/unknown-type")
    derived = client.post(
        "/", content=body, headers=binary_headers(device["token"], "media.audio.vad_filtered")
    )
    assert_problem(derived, 400, "made by Loom's own functions")


def test_schema_invalid_data_is_422_with_pointer(
    client: TestClient, device: dict[str, Any]
) -> None:
    data = gps(device["device_id"], latitude=123.0)
    del data["longitude"]
    answer = client.post("/", content=json.dumps(data), headers=binary_headers(device["token"]))
    problem = assert_problem(answer, 422, "2 problem(s)")
    pointers = {e["pointer"] for e in problem["errors"]}
    assert pointers == {"", "/latitude"}


def test_body_over_the_types_limit_is_413(client: TestClient, device: dict[str, Any]) -> None:
    huge = gps(device["device_id"], note="x" * 300_000)
    answer = client.post("/", content=json.dumps(huge), headers=binary_headers(device["token"]))
    problem = assert_problem(answer, 413, "over the limit of 262144")
    assert problem["limit_bytes"] == 262144


# ── auth ──────────────────────────────────────────────────────────────────


def test_tokens_are_required_and_bound_to_their_device(
    client: TestClient, device: dict[str, Any], admin: str
) -> None:
    body = json.dumps(gps(device["device_id"]))
    headers = binary_headers(device["token"])
    del headers["authorization"]
    assert_problem(client.post("/", content=body, headers=headers), 401, "Authorization: Bearer")
    wrong = binary_headers("loom_nope")
    assert_problem(client.post("/", content=body, headers=wrong), 401, "unknown or revoked")
    other = register(client, admin)
    stolen = client.post(
        "/", content=json.dumps(gps(other["device_id"])), headers=binary_headers(device["token"])
    )
    assert_problem(stolen, 403, f"data.device_id '{other['device_id']}' is not this token's device")
    as_admin = client.post(
        "/", content=json.dumps(gps(other["device_id"])), headers=binary_headers(admin)
    )
    assert as_admin.status_code == 202
    managing = client.get("/devices", headers={"authorization": f"Bearer {device['token']}"})
    assert_problem(managing, 403, "needs the admin token")


def test_rate_limit_answers_429_with_retry_after(
    ingest_settings: IngestSettings, admin: str
) -> None:
    limited = ingest_settings.model_copy(update={"ingest_rate_limit_per_device": 1.0})
    with TestClient(create_app(limited)) as c:
        dev = register(c, admin)
        answers = [
            c.post(
                "/", content=json.dumps(gps(dev["device_id"])), headers=binary_headers(dev["token"])
            )
            for _ in range(4)
        ]
    assert [a.status_code for a in answers[:2]] == [202, 202]
    assert answers[3].status_code == 429
    assert int(answers[3].headers["retry-after"]) >= 1


# ── found by review: each once a 500, a hang or a way around a check ─────


def test_timestamp_without_offset_is_422_not_500(
    client: TestClient, device: dict[str, Any]
) -> None:
    auth = {"authorization": f"Bearer {device['token']}"}
    answer = client.post(
        "/sensor/gps",
        json={"latitude": 1, "longitude": 2, "timestamp": "2026-11-25T08:00:00"},
        headers=auth,
    )
    assert_problem(answer, 422, "is not a 'date-time'")
    batch = [
        {"sensor_type": "gps", "value": {"latitude": 1, "longitude": 2}, "timestamp": "2026-11-25"}
    ]
    assert client.post("/sensor/batch", json=batch, headers=auth).status_code == 207


def test_a_device_cannot_use_another_devices_source(
    client: TestClient, device: dict[str, Any]
) -> None:
    headers = binary_headers(device["token"], source="/devices/someone-else")
    answer = client.post("/", content=json.dumps(gps(device["device_id"])), headers=headers)
    assert_problem(answer, 403, "belongs to another device")
    own = binary_headers(device["token"], source=f"/devices/{device['device_id']}/gps")
    assert (
        client.post("/", content=json.dumps(gps(device["device_id"])), headers=own).status_code
        == 202
    )


def test_oversized_attributes_are_413(client: TestClient, device: dict[str, Any]) -> None:
    event = {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "/t",
        "type": "device.sensor.gps.raw",
        "big": "A" * 20_000,
        "data": gps(device["device_id"]),
    }
    answer = post_structured(client, device["token"], event)
    assert_problem(answer, 413, "attributes take")


def test_numbers_json_cannot_carry_are_400(client: TestClient, device: dict[str, Any]) -> None:
    body = json.dumps(
        {
            "specversion": "1.0",
            "id": "big-1",
            "source": "/t",
            "type": "device.sensor.gps.raw",
            "data": gps(device["device_id"], x=10**30),
        }
    )
    answer = client.post(
        "/",
        content=body,
        headers={
            "authorization": f"Bearer {device['token']}",
            "content-type": "application/cloudevents+json",
        },
    )
    assert answer.status_code in (400, 422), answer.text
    assert answer.headers["content-type"] == "application/problem+json"


def test_unknown_types_do_not_become_metric_labels(
    client: TestClient, device: dict[str, Any]
) -> None:
    batch = [
        {
            "specversion": "1.0",
            "id": f"x{i}",
            "source": "/t",
            "type": f"made.up.type{i}",
            "data": {},
        }
        for i in range(5)
    ]
    post_batch(client, device["token"], batch)
    assert "made.up.type" not in client.get("/metrics").text


def test_deleted_device_can_be_registered_again(client: TestClient, admin: str) -> None:
    auth = {"authorization": f"Bearer {admin}"}
    first = register(client, admin, name="old")
    client.delete(f"/devices/{first['device_id']}", headers=auth)
    again = client.post(
        "/devices", json={"device_id": first["device_id"], "name": "new"}, headers=auth
    )
    assert again.status_code == 201, again.text
    assert again.json()["name"] == "new"
    assert again.json()["deleted_at"] is None
    assert again.json()["token"] != first["token"]


def test_nul_in_device_fields_is_400(client: TestClient, admin: str) -> None:
    answer = client.post(
        "/devices", json={"name": "a\u0000b"}, headers={"authorization": f"Bearer {admin}"}
    )
    assert_problem(answer, 400, "cannot store")
