"""Waking the connections of devices that wait for commands, from PostgreSQL NOTIFY.

A trigger on ``device_commands`` notifies the channel with the device id of every new
row, whichever process inserted it (this replica, another one, the sync function); one
``LISTEN`` connection per ingest replica hands each notification to the connections of
that device. A lost listener is reconnected, and every waiting connection woken then (it
may have missed something); the waiting connections also look every
``ingest_command_poll_seconds`` on their own.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import psycopg

from functions.commands.queue import NOTIFY_CHANNEL
from loom.logging import get_logger

__all__ = ["CommandNotifier"]

log = get_logger("loom.ingest")


class CommandNotifier:
    def __init__(self, database_url: str, retry_seconds: float = 2.0) -> None:
        self._url = database_url
        self._retry = retry_seconds
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._task: asyncio.Task[None] | None = None
        self.listening = False

    @contextlib.contextmanager
    def subscribe(self, device_id: str) -> Iterator[asyncio.Event]:
        """An event that is set whenever ``device_id`` may have something new."""
        wake = asyncio.Event()
        self._waiters.setdefault(device_id, set()).add(wake)
        try:
            yield wake
        finally:
            waiters = self._waiters.get(device_id)
            if waiters is not None:
                waiters.discard(wake)
                if not waiters:
                    del self._waiters[device_id]

    def wake(self, device_id: str) -> None:
        for wake in self._waiters.get(device_id, ()):
            wake.set()

    def wake_all(self) -> None:
        for waiters in self._waiters.values():
            for wake in waiters:
                wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="command-notify")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.listening = False

    async def _listen(self) -> None:
        failing = False
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self._url, autocommit=True, connect_timeout=3
                )
                async with conn:
                    await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    self.listening, failing = True, False
                    log.info("ingest.command_notify_listening")
                    self.wake_all()
                    async for note in conn.notifies():
                        self.wake(note.payload)
            except (psycopg.Error, OSError) as exc:
                if not failing:  # once per outage, not every retry
                    log.warning("ingest.command_notify_lost", error=str(exc))
                failing = True
            self.listening = False
            await asyncio.sleep(self._retry)
