"""Waking the connections of devices that wait for commands, from PostgreSQL NOTIFY.

A trigger on ``device_commands`` notifies one channel with the device id of every new
row, whichever process inserted it (this replica, another one, the sync function);
triggers on ``access_tokens`` and ``devices`` notify another with the device id when
its tokens are revoked (rotated, or the device deleted). One ``LISTEN`` connection per
ingest replica hands each notification to the connections of that device (a revocation
to ``on_revoked`` first, which forgets the cached token checks, so the woken connections
check their token anew and close). A lost listener is reconnected, and then every token
check forgotten and every waiting connection woken (it may have missed something); the
waiting connections also look every ``ingest_command_poll_seconds`` on their own.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator

import psycopg

from functions.commands.queue import NOTIFY_CHANNEL
from loom.logging import get_logger

__all__ = ["REVOKED_CHANNEL", "CommandNotifier"]

REVOKED_CHANNEL = "loom_device_tokens"  # migration 0010's triggers NOTIFY it with the device id
log = get_logger("loom.ingest")


class CommandNotifier:
    def __init__(
        self,
        database_url: str,
        retry_seconds: float = 2.0,
        on_revoked: Callable[[str | None], None] | None = None,
    ) -> None:
        """``on_revoked(device_id)`` hears of each revocation (``None``: any may have been
        missed) before the device's connections are woken."""
        self._url = database_url
        self._retry = retry_seconds
        self._on_revoked = on_revoked or (lambda _: None)
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

    def notified(self, channel: str, device_id: str) -> None:
        """A notification: something new for ``device_id``, or its tokens revoked."""
        if channel == REVOKED_CHANNEL:
            self._on_revoked(device_id)
        self.wake(device_id)

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
                    await conn.execute(f"LISTEN {REVOKED_CHANNEL}")
                    self.listening, failing = True, False
                    log.info("ingest.command_notify_listening")
                    self._on_revoked(None)
                    self.wake_all()
                    async for note in conn.notifies():
                        self.notified(note.channel, note.payload)
            except (psycopg.Error, OSError) as exc:
                if not failing:  # once per outage, not every retry
                    log.warning("ingest.command_notify_lost", error=str(exc))
                failing = True
            self.listening = False
            await asyncio.sleep(self._retry)
