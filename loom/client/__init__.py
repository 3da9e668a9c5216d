"""The device SDK: send CloudEvents to Loom's ingest, queue them while offline, receive commands.

:class:`LoomClient` (blocking) and :class:`AsyncLoomClient` (asyncio) share one
implementation of events, batching, retries and the on-disk queue; the async one
also receives remote commands.
"""

from loom.client.aio import AsyncLoomClient
from loom.client.core import Command
from loom.client.errors import ClientError, QueueFull, Rejected, Unavailable
from loom.client.events import BatchResult, EventResult, FlushResult
from loom.client.queue import EventQueue, default_queue_path
from loom.client.retry import RetryPolicy
from loom.client.sync import LoomClient

__all__ = [
    "AsyncLoomClient",
    "BatchResult",
    "ClientError",
    "Command",
    "EventQueue",
    "EventResult",
    "FlushResult",
    "LoomClient",
    "QueueFull",
    "Rejected",
    "RetryPolicy",
    "Unavailable",
    "default_queue_path",
]
