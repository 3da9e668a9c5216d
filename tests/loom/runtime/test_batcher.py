"""The group-commit batcher: callers that wait together share a call, each gets its own answer."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest

from loom.runtime.batcher import Batcher


def doubled(calls: list[list[int]]):
    def run(items: Sequence[int]) -> list[int]:
        calls.append(list(items))
        return [2 * item for item in items]

    return run


async def test_callers_waiting_together_share_calls_of_at_most_max_batch() -> None:
    calls: list[list[int]] = []
    batcher = Batcher(doubled(calls), max_batch=4)
    answers = await asyncio.gather(*(batcher.submit(i) for i in range(10)))
    assert answers == [2 * i for i in range(10)]
    assert [len(c) for c in calls] == [4, 4, 2]
    assert (batcher.stats.calls, batcher.stats.items, batcher.stats.largest) == (3, 10, 4)


async def test_run_is_called_off_the_event_loop() -> None:
    threads: list[threading.Thread] = []

    def run(items: Sequence[int]) -> list[int]:
        threads.append(threading.current_thread())
        return list(items)

    assert await Batcher(run, max_batch=8).submit(1) == 1
    assert threads != [threading.main_thread()]


async def test_a_failing_call_fails_every_caller_in_it_and_the_next_batch_goes_on() -> None:
    def run(items: Sequence[int]) -> list[int]:
        if 0 in items:
            raise RuntimeError("model crashed")
        return list(items)

    batcher = Batcher(run, max_batch=2)
    first = await asyncio.gather(*(batcher.submit(i) for i in range(4)), return_exceptions=True)
    assert [type(o) for o in first[:2]] == [RuntimeError, RuntimeError]
    assert first[2:] == [2, 3]
    assert batcher.stats.calls == 1


async def test_a_cancelled_caller_is_left_out() -> None:
    calls: list[list[int]] = []
    batcher = Batcher(doubled(calls), max_batch=8)
    gone = asyncio.ensure_future(batcher.submit(1))
    kept = asyncio.ensure_future(batcher.submit(2))
    await asyncio.sleep(0)
    gone.cancel()
    assert await kept == 4
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert calls == [[2]]
