"""Concurrent deliveries share forward passes (:mod:`loom.runtime.batcher`).

Each caller queues its text's tokens; one call of the model in a thread takes up to
``max_batch`` texts (the encoder cuts them further to its token budget) and answers
each with its vector.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from functions.embed.encoder import Tokens
from loom.runtime import batcher

__all__ = ["BatchStats", "Batcher"]


class BatchStats(batcher.BatchStats):
    @property
    def texts(self) -> int:
        """Texts embedded."""
        return self.items


class Batcher(batcher.Batcher[Tokens, np.ndarray]):
    stats: BatchStats

    def __init__(self, run: Callable[[Sequence[Tokens]], np.ndarray], max_batch: int = 32) -> None:
        """``run`` gives one row per input: (n, dimensions)."""
        super().__init__(run, max_batch, BatchStats())

    async def embed(self, tokens: Tokens) -> np.ndarray:
        """The vector of one tokenized text."""
        return await self.submit(tokens)
