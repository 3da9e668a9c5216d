"""Work in child processes with a hard time limit: what a call gives and raises, a call
over the limit stopped (its worker replaced), a worker that dies, calls that wait their
turn, a call cancelled half-way, a worker that cannot start. Real processes throughout."""

from __future__ import annotations

import asyncio
import math
import os
import signal
import time
from collections.abc import AsyncIterator

import pytest

from loom.errors import LoomError
from loom.web import ExtractionFailed, Extractor, ExtractorUnavailable


@pytest.fixture
async def workers() -> AsyncIterator[Extractor]:
    """One warm worker, a second of time per call."""
    async with Extractor(workers=1, timeout_seconds=1.0, setting="LOOM_X_TIMEOUT") as extractor:
        yield extractor


async def test_a_call_gives_its_result_and_raises_its_error(workers: Extractor) -> None:
    assert await workers.run(int, "ff", base=16) == 255
    with pytest.raises(ValueError, match="math domain error"):
        await workers.run(math.sqrt, -1)
    assert await workers.run(os.getpid) != os.getpid()  # in another process


async def test_a_call_over_the_limit_is_stopped_and_its_worker_replaced(
    workers: Extractor,
) -> None:
    first = await workers.run(os.getpid)
    started = time.monotonic()
    with pytest.raises(
        ExtractionFailed, match=r"took longer than 1 s \(LOOM_X_TIMEOUT\) and was stopped"
    ) as info:
        await workers.run(time.sleep, 30)
    assert time.monotonic() - started < 3
    assert (info.value.reason, info.value.permanent) == ("timeout", True)
    assert isinstance(info.value, LoomError)
    with pytest.raises(ProcessLookupError):
        os.kill(first, 0)  # the stopped worker is gone
    assert await workers.run(os.getpid) not in (first, os.getpid())


async def test_a_worker_that_dies_under_a_call_is_replaced(workers: Extractor) -> None:
    with pytest.raises(ExtractionFailed, match=r"its process died \(exit code 3\)") as info:
        await workers.run(os._exit, 3)
    assert info.value.reason == "died"
    assert await workers.run(math.factorial, 4) == 24


async def test_a_worker_killed_while_idle_is_not_blamed_on_the_next_call(
    workers: Extractor,
) -> None:
    idle = await workers.run(os.getpid)
    os.kill(idle, signal.SIGKILL)
    await asyncio.sleep(0.2)
    assert await workers.run(math.factorial, 4) == 24


async def test_calls_beyond_the_workers_wait_their_turn_untimed(workers: Extractor) -> None:
    await workers.run(os.getpid)  # warm
    started = time.monotonic()
    await asyncio.gather(*(workers.run(time.sleep, 0.4) for _ in range(4)))  # 1.6 s in all
    assert time.monotonic() - started >= 1.6  # one at a time, none of them stopped


async def test_a_cancelled_call_leaves_nothing_behind_for_the_next(workers: Extractor) -> None:
    call = asyncio.ensure_future(workers.run(time.sleep, 0.5))
    await asyncio.sleep(0.2)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert await workers.run(math.factorial, 5) == 120  # not the sleep's answer


async def test_a_worker_that_cannot_start_says_why() -> None:
    async with Extractor(workers=1, preload=["loom.no_such_module"]) as broken:
        with pytest.raises(ExtractorUnavailable, match=r"No module named 'loom\.no_such_module'"):
            await broken.run(math.factorial, 3)


async def test_a_closed_extractor_takes_no_more_calls() -> None:
    extractor = Extractor(workers=1)
    extractor.close()
    with pytest.raises(ExtractorUnavailable, match="closed"):
        await extractor.run(math.factorial, 3)


def test_the_limits_must_make_sense() -> None:
    with pytest.raises(ValueError, match="workers must be at least 1"):
        Extractor(workers=0)
    with pytest.raises(ValueError, match="timeout_seconds must be more than 0"):
        Extractor(timeout_seconds=0)
