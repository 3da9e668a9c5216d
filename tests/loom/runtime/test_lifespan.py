"""What a function keeps between events: opened once by every host, closed at the end."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from starlette.testclient import TestClient

from loom.catalog import default_catalog
from loom.events import to_http_binary
from loom.runtime.context import Context
from loom.runtime.event import Event
from loom.runtime.http import create_function_app
from loom.runtime.registry import Registry, function
from loom.settings import LoomSettings
from loom.testing import FunctionHarness, InMemoryBroker, example_event

registry = Registry()
opened: list[str] = []


@asynccontextmanager
async def counter(settings: LoomSettings) -> AsyncIterator[dict[str, Any]]:
    opened.append("open")
    state = {"seen": 0, "environment": settings.environment}
    yield state
    opened.append(f"closed after {state['seen']}")


@function(consumes=["device.state.power.raw"], name="counting", lifespan=counter,
          registry=registry)  # fmt: skip
async def counting(event: Event, ctx: Context) -> None:
    ctx.state["seen"] += 1


@pytest.fixture(autouse=True)
def _reset() -> None:
    opened.clear()


async def test_the_harness_opens_the_lifespan_once_for_all_calls() -> None:
    async with FunctionHarness(counting) as harness:
        for _ in range(3):
            await harness.call_example("device.state.power.raw")
        assert harness.state == {"seen": 3, "environment": "development"}
    assert opened == ["open", "closed after 3"]


async def test_calling_outside_the_lifespan_says_how_to_do_it() -> None:
    with pytest.raises(RuntimeError, match="async with FunctionHarness"):
        await FunctionHarness(counting).call_example("device.state.power.raw")


async def test_the_in_memory_broker_keeps_the_lifespan_open_for_a_run() -> None:
    broker = InMemoryBroker(registry)
    for _ in range(2):
        broker.publish(example_event("device.state.power.raw"))
    assert await broker.run() == 2
    assert opened == ["open", "closed after 2"]


def test_the_http_host_opens_it_at_start_up_and_closes_it_at_shut_down() -> None:
    app = create_function_app(counting.spec, catalog=default_catalog(), settings=LoomSettings())
    headers, body = to_http_binary(example_event("device.state.power.raw").to_cloudevent())
    with TestClient(app) as client:
        assert client.post("/", headers=headers, content=body).status_code == 202
        assert client.post("/", headers=headers, content=body).status_code == 202
    assert opened == ["open", "closed after 2"]
