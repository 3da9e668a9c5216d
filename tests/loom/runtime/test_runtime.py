"""The function contract, its harness and in-memory graph, and its Knative HTTP host."""

from __future__ import annotations

import json
from typing import Any

import pytest
from starlette.testclient import TestClient

from loom.catalog import default_catalog
from loom.events import PARTITION_KEY
from loom.runtime.event import Event
from loom.runtime.http import create_function_app
from loom.runtime.invoke import BadOutput, HandlerFailed, PoisonEvent
from loom.runtime.registry import GraphError, Registry, function
from loom.settings import LoomSettings
from loom.testing import FunctionHarness, InMemoryBroker, assert_emitted, example_event
from tests.loom.runtime.sample import liar, power_echo, registry


def power(level: float, **extra: Any) -> Event:
    data = {"device_id": "phone-1", "timestamp": "2026-11-25T08:00:00Z",
            "battery_level": level, "is_charging": True, **extra}  # fmt: skip
    return Event(type="device.state.power.raw", data=data, source="/devices/phone-1",
                 device_id="phone-1", id=f"p-{level}")  # fmt: skip


async def test_harness_runs_the_handler_on_golden_examples() -> None:
    made = await FunctionHarness(power_echo).call_example("device.state.power.raw")
    (enriched,) = assert_emitted(made, "device.state.power.enriched", count=1)
    assert enriched.data["derived_from"]["type"] == "device.state.power.raw"
    assert enriched.source == "/loom/functions/power-echo"


async def test_emit_adds_events_and_derived_ids_are_deterministic() -> None:
    harness = FunctionHarness(power_echo)
    first = await harness.call(power(100))
    again = await harness.call(power(100))
    assert [e.type for e in first] == ["device.state.power.enriched", "device.state.power.patterns"]
    assert [e.id for e in first] == [e.id for e in again]
    assert len({e.id for e in first}) == 2
    assert all(e.device_id == "phone-1" for e in first)


async def test_poison_failure_and_bad_output_are_told_apart() -> None:
    harness = FunctionHarness(power_echo)
    with pytest.raises(PoisonEvent, match="battery_level"):
        await harness.call(example_event("device.state.power.raw", valid=False,
                                         name="battery-level-above-100"))  # fmt: skip
    with pytest.raises(PoisonEvent, match="does not consume"):
        await harness.call(example_event("device.sensor.gps.raw"))
    with pytest.raises(HandlerFailed, match="RuntimeError: unlucky battery level"):
        await harness.call(power(13))
    with pytest.raises(
        BadOutput, match=r"'motion\.events\.significant', which it does not declare"
    ):
        await FunctionHarness(liar).call(power(50))


def test_registration_checks_the_graph() -> None:
    own = Registry()

    @function(consumes=["device.nope.raw"], registry=own, name="bad")
    async def bad(event: Event, ctx: Any) -> None:
        return None

    with pytest.raises(GraphError, match=r"consumes unknown type\(s\): \['device.nope.raw'\]"):
        own.check(default_catalog())

    @function(consumes=["device.state.power.raw"], produces=["device.state.power.raw"],
              registry=Registry(), name="loop")  # fmt: skip
    async def loop(event: Event, ctx: Any) -> None:
        return None

    with pytest.raises(GraphError, match="would feed its own input"):
        loop.spec.check(default_catalog())


async def test_in_memory_broker_runs_the_graph_and_keeps_dead_letters() -> None:
    graph = Registry(functions={"power-echo": registry["power-echo"]})
    broker = InMemoryBroker(graph)
    for level in (40, 100, 13):
        broker.publish(power(level))
    deliveries = await broker.run()
    assert deliveries == 3
    assert len(broker.events("device.state.power.enriched")) == 2
    assert len(broker.events("device.state.power.patterns")) == 1
    (dead,) = broker.dead_letters
    assert dead.event.data["battery_level"] == 13
    assert "unlucky" in dead.reason


# ── the Knative Service host ───────────────────────────────────────────────


def binary(event: Event) -> dict[str, str]:
    return {"ce-specversion": "1.0", "ce-id": event.id, "ce-source": event.source,
            "ce-type": event.type, "ce-partitionkey": event.device_id or "",
            "content-type": "application/json"}  # fmt: skip


def test_http_host_replies_in_binary_mode() -> None:
    app = create_function_app(power_echo.spec, catalog=default_catalog(), settings=LoomSettings())
    with TestClient(app) as client:
        event = power(60)
        answer = client.post("/", content=json.dumps(event.data), headers=binary(event))
        assert answer.status_code == 200, answer.text
        assert answer.headers["ce-type"] == "device.state.power.enriched"
        assert answer.headers["ce-partitionkey"] == "phone-1"
        assert answer.headers["ce-source"] == "/loom/functions/power-echo"
        assert answer.json()["battery_level"] == 60
        assert client.get("/healthz").json()["function"] == "power-echo"
        assert 'loom_function_events_total{function="power-echo",outcome="ok"} 1.0' in client.get(
            "/metrics").text  # fmt: skip


def test_http_host_answers_poison_4xx_and_failures_503() -> None:
    app = create_function_app(power_echo.spec, catalog=default_catalog(), settings=LoomSettings())
    with TestClient(app) as client:
        bad = power(150)
        answer = client.post("/", content=json.dumps(bad.data), headers=binary(bad))
        assert answer.status_code == 422
        assert answer.json()["errors"][0]["pointer"] == "/battery_level"
        no_id = binary(bad)
        del no_id["ce-id"]
        assert client.post("/", content=b"{}", headers=no_id).status_code == 400
        failing = power(13)
        answer = client.post("/", content=json.dumps(failing.data), headers=binary(failing))
        assert answer.status_code == 503
        assert answer.headers["retry-after"] == "5"
        # a second event with no K_SINK to send it to is a failure, retried later
        full = power(100)
        answer = client.post("/", content=json.dumps(full.data), headers=binary(full))
        assert answer.status_code == 503
        assert "K_SINK is not set" in answer.json()["detail"]


def test_http_host_sends_further_events_to_k_sink() -> None:
    received: list[dict[str, str]] = []

    async def sink_app(scope: Any, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        received.append(
            {k.decode(): v.decode() for k, v in scope["headers"]} | {"body": body.decode()}
        )
        await send({"type": "http.response.start", "status": 202, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    import threading

    import uvicorn

    from loom.services._process import free_port

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(sink_app, host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        pass
    try:
        sink = f"http://127.0.0.1:{port}/"
        app = create_function_app(
            power_echo.spec, catalog=default_catalog(), settings=LoomSettings(), sink=sink
        )
        with TestClient(app) as client:
            full = power(100)
            answer = client.post("/", content=json.dumps(full.data), headers=binary(full))
        assert answer.status_code == 200
        (sent,) = received
        assert sent["ce-type"] == "device.state.power.patterns"
        assert sent[f"ce-{PARTITION_KEY}"] == "phone-1"
        assert json.loads(sent["body"])["pattern"] == "charging_session"
    finally:
        server.should_exit = True
        thread.join(10)
