"""Concurrent deliveries share model calls: a group commit for inference.

Each caller queues its input and waits; one worker takes everything queued (up to
``max_batch`` inputs) into one call of ``run`` in a thread, off the event loop, answers
them all, and takes what queued up meanwhile. One caller alone costs no wait; many at
once make big batches. A call that fails fails every caller in it; the next batch goes
on. A caller that is cancelled while it waits is left out of the batch.

    batcher = Batcher(model.embed_many, max_batch=32)
    vector = await batcher.submit(tokens)
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

__all__ = ["BatchStats", "Batcher"]

In = TypeVar("In")
Out = TypeVar("Out")


@dataclass
class BatchStats:
    """What a batcher did: calls of ``run``, inputs answered, the most in one call."""

    calls: int = 0
    items: int = 0
    largest: int = 0

    def record(self, batch: Sequence[Any]) -> None:
        """Count one call of ``run`` that answered ``batch``."""
        self.calls += 1
        self.items += len(batch)
        self.largest = max(self.largest, len(batch))


class Batcher(Generic[In, Out]):
    """Inputs in, answers out, many per call of ``run``.

    ``run`` is blocking (it runs in a worker thread) and returns one answer per input,
    in order; ``stats`` counts what it did (a subclass of :class:`BatchStats` may count
    more)."""

    def __init__(
        self,
        run: Callable[[Sequence[In]], Iterable[Out]],
        max_batch: int,
        stats: BatchStats | None = None,
    ) -> None:
        self.run = run
        self.max_batch = max_batch
        self.stats = stats if stats is not None else BatchStats()
        self._queue: deque[tuple[In, asyncio.Future[Out]]] = deque()
        self._worker: asyncio.Task[None] | None = None

    async def submit(self, item: In) -> Out:
        """The answer to ``item``, from a call of ``run`` it may share with others."""
        future: asyncio.Future[Out] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        await asyncio.sleep(0)  # let the callers that are ready queue theirs first
        while self._queue:
            batch = [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]
            live = [(item, future) for item, future in batch if not future.cancelled()]
            if not live:
                continue
            items = [item for item, _ in live]
            try:
                answers = await asyncio.to_thread(self.run, items)
            except Exception as exc:  # noqa: BLE001 - every waiter hears it; the next batch goes on
                for _, future in live:
                    if not future.done():
                        future.set_exception(exc)
                continue
            self.stats.record(items)
            for (_, future), answer in zip(live, answers, strict=True):
                if not future.done():
                    future.set_result(answer)
