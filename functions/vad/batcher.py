"""Concurrent deliveries share model calls: a group commit for inference.

Each caller queues its stream's frames and waits; one worker thread takes everything
queued (up to ``max_batch`` streams) into one backend call, answers them all, and takes
what queued up meanwhile. One device alone costs no wait; many at once make big batches.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from functions.vad.silero import Request, SileroBackend

__all__ = ["BatchStats", "Batcher"]


@dataclass
class BatchStats:
    calls: int = 0
    streams: int = 0
    frames: int = 0
    largest: int = 0


@dataclass
class Batcher:
    backend: SileroBackend
    max_batch: int = 64
    stats: BatchStats = field(default_factory=BatchStats)
    _queue: deque[tuple[Request, asyncio.Future[Request]]] = field(default_factory=deque)
    _worker: asyncio.Task[None] | None = None

    async def infer(self, frames: np.ndarray, state: np.ndarray) -> Request:
        """Speech probabilities of ``frames`` (T, 576) from ``state``; and the next state."""
        if not len(frames):
            return np.zeros(0, np.float32), state
        future: asyncio.Future[Request] = asyncio.get_running_loop().create_future()
        self._queue.append(((frames, state), future))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        await asyncio.sleep(0)  # let the callers that are ready queue theirs first
        while self._queue:
            batch = [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]
            live = [(request, future) for request, future in batch if not future.cancelled()]
            if not live:
                continue
            try:
                answers = await asyncio.to_thread(self.backend.run, [r for r, _ in live])
            except Exception as exc:  # noqa: BLE001 - every waiter hears it; the next batch goes on
                for _, future in live:
                    if not future.done():
                        future.set_exception(exc)
                continue
            self.stats.calls += 1
            self.stats.streams += len(live)
            self.stats.frames += sum(len(r[0]) for r, _ in live)
            self.stats.largest = max(self.stats.largest, len(live))
            for (_, future), answer in zip(live, answers, strict=True):
                if not future.done():
                    future.set_result(answer)
