"""Concurrent deliveries share forward passes: a group commit for inference.

Each caller queues its text's tokens and waits; one worker takes everything queued (up to
``max_batch`` texts) into one call of the model in a thread, off the event loop, answers
them all, and takes what queued up meanwhile. One event alone costs no wait; many at
once make big batches.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from functions.embed.encoder import Tokens

__all__ = ["BatchStats", "Batcher"]


@dataclass
class BatchStats:
    calls: int = 0
    texts: int = 0
    largest: int = 0


@dataclass
class Batcher:
    run: Callable[[Sequence[Tokens]], np.ndarray]  # (n, dimensions), one row per input
    max_batch: int = 32
    stats: BatchStats = field(default_factory=BatchStats)
    _queue: deque[tuple[Tokens, asyncio.Future[np.ndarray]]] = field(default_factory=deque)
    _worker: asyncio.Task[None] | None = None

    async def embed(self, tokens: Tokens) -> np.ndarray:
        """The vector of one tokenized text."""
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self._queue.append((tokens, future))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        await asyncio.sleep(0)  # let the callers that are ready queue theirs first
        while self._queue:
            batch = [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]
            live = [(tokens, future) for tokens, future in batch if not future.cancelled()]
            if not live:
                continue
            try:
                vectors = await asyncio.to_thread(self.run, [tokens for tokens, _ in live])
            except Exception as exc:  # noqa: BLE001 - every waiter hears it; the next batch goes on
                for _, future in live:
                    if not future.done():
                        future.set_exception(exc)
                continue
            self.stats.calls += 1
            self.stats.texts += len(live)
            self.stats.largest = max(self.stats.largest, len(live))
            for (_, future), vector in zip(live, vectors, strict=True):
                if not future.done():
                    future.set_result(vector)
