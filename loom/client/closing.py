"""``with`` and ``async with`` for what the client opens: leaving the block closes it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Self

__all__ = ["AsyncClosing", "Closing"]


class Closing(ABC):
    """``with thing:`` calls ``thing.close()`` on the way out, error or not."""

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncClosing(ABC):
    """``async with thing:`` awaits ``thing.aclose()`` on the way out, error or not."""

    @abstractmethod
    async def aclose(self) -> None: ...

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
