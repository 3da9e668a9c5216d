"""Per-device function state, in PostgreSQL and in memory: same behaviour."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from loom.runtime.state import MemoryStateStore, open_state_store
from loom.services import LocalServices
from tests.integration.store_helpers import fresh_database


@pytest.fixture(params=["postgres", "memory"])
async def states(request: pytest.FixtureRequest, services: LocalServices) -> AsyncIterator[Any]:
    if request.param == "memory":
        yield MemoryStateStore()
        return
    url = fresh_database(services)
    settings = services.settings(database_url=url)
    async with open_state_store(settings, "counter") as store:
        yield store


async def count(states: Any, key: str, event_id: str, by: int = 1) -> tuple[int, bool]:
    async with states.transition(key, event_id) as step:
        step.value = {"n": step.value.get("n", 0) + by}
    return step.value["n"], step.repeated


async def test_each_event_moves_the_state_once(states: Any) -> None:
    assert await count(states, "phone-1", "e1") == (1, False)
    assert await count(states, "phone-1", "e2") == (2, False)
    assert await count(states, "phone-2", "e1") == (1, False)
    assert await states.get("phone-1") == {"n": 2}


async def test_the_last_event_again_starts_from_the_state_before_it(states: Any) -> None:
    await count(states, "phone-1", "e1")
    await count(states, "phone-1", "e2")
    assert await count(states, "phone-1", "e2") == (2, True)  # not 3: e2 is not applied twice
    assert await count(states, "phone-1", "e3") == (3, False)
    assert await states.get("phone-1") == {"n": 3}


async def test_a_failing_handler_changes_nothing(states: Any) -> None:
    await count(states, "phone-1", "e1")

    async def fail() -> None:
        async with states.transition("phone-1", "e2") as step:
            step.value = {"n": 99}
            raise RuntimeError("handler failed")

    with pytest.raises(RuntimeError):
        await fail()
    assert await states.get("phone-1") == {"n": 1}
    assert await count(states, "phone-1", "e2") == (2, False)


async def test_first_transitions_of_one_key_at_once_both_count(states: Any) -> None:
    import asyncio

    async def slow(event_id: str) -> None:
        async with states.transition("phone-1", event_id) as step:
            await asyncio.sleep(0.2)  # both have read before either writes, unless locked
            step.value = {"n": step.value.get("n", 0) + 1}

    await asyncio.gather(slow("from-topic-a"), slow("from-topic-b"))
    assert await states.get("phone-1") == {"n": 2}


async def test_peek_sees_what_the_transition_will_start_from(states: Any) -> None:
    await count(states, "phone-1", "e1")
    await count(states, "phone-1", "e2")
    assert await states.peek("phone-1", "e3") == {"n": 2}  # a new event: the state now
    assert await states.peek("phone-1", "e2") == {"n": 1}  # the last again: before it
    assert await states.peek("phone-9", "e1") == {}
