"""Concurrent deliveries share model calls (:mod:`loom.runtime.batcher`).

Each caller queues its stream's frames and state; one backend call in a worker thread
takes up to ``max_batch`` streams and answers each with its speech probabilities and
next state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from functions.vad.silero import Request, SileroBackend
from loom.runtime import batcher

__all__ = ["BatchStats", "Batcher"]


@dataclass
class BatchStats(batcher.BatchStats):
    frames: int = 0

    @property
    def streams(self) -> int:
        """Streams answered."""
        return self.items

    def record(self, batch: Sequence[Request]) -> None:
        super().record(batch)
        self.frames += sum(len(frames) for frames, _ in batch)


class Batcher(batcher.Batcher[Request, Request]):
    stats: BatchStats

    def __init__(self, backend: SileroBackend, max_batch: int = 64) -> None:
        super().__init__(backend.run, max_batch, BatchStats())
        self.backend = backend

    async def infer(self, frames: np.ndarray, state: np.ndarray) -> Request:
        """Speech probabilities of ``frames`` (T, 576) from ``state``; and the next state."""
        if not len(frames):
            return np.zeros(0, np.float32), state
        return await self.submit((frames, state))
