"""CPU-bound work on fetched bodies (a PDF's text, a web page's) in child processes, with
a hard time limit.

A few kilobytes made for it keep pypdf or trafilatura busy for minutes, and a thread
running them can be neither stopped nor reused: a handful of such documents would hold
every thread of the pool. So an :class:`Extractor` runs each call in one of its
``workers`` child processes (spawned, so none inherits the parent's threads or
sockets; kept warm, so the extractors' imports are paid once). A call that runs over
``timeout_seconds`` is stopped by killing its child, which is replaced at once, and
raises :class:`ExtractionFailed`; so does a call whose child dies under it (out of
memory, a crash in C). Both are permanent: the same document would do it again.
Calls beyond ``workers`` wait their turn; only the run itself is timed. A child that
cannot start raises :class:`ExtractorUnavailable` (the deployment's fault, not the
document's).

What a call takes and gives goes through a pipe: a module-level function, and
arguments and a result that pickle. An exception it raises is raised here.
"""

from __future__ import annotations

import asyncio
import importlib
import multiprocessing
import signal
import traceback
from collections import deque
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from types import TracebackType
from typing import Any, Literal, ParamSpec, TypeVar

from pydantic_settings import BaseSettings

from loom.errors import LoomError
from loom.settings import variable

__all__ = ["ExtractionFailed", "Extractor", "ExtractorUnavailable"]

P = ParamSpec("P")
T = TypeVar("T")


class ExtractionFailed(LoomError):
    """The call did not finish: ``reason`` ``timeout`` (it ran over the limit and was
    stopped) or ``died`` (its process died under it). Permanent."""

    permanent = True

    def __init__(self, detail: str, *, reason: Literal["timeout", "died"]) -> None:
        super().__init__(detail)
        self.reason = reason


class ExtractorUnavailable(LoomError):
    """A worker process could not start (an import that fails, say); it may pass."""


def _serve(conn: Connection[Any, Any], preload: Sequence[str]) -> None:
    """A worker's life: import ``preload``, say so, then run calls until the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops its workers itself
    try:
        for name in preload:
            importlib.import_module(name)
    except BaseException:  # noqa: BLE001 - whatever it is, the parent is told
        conn.send(("failed", traceback.format_exc(limit=5)))
        return
    conn.send(("ready", None))
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return  # the parent is gone
        if job is None:
            return
        fn, args, kwargs = job
        try:
            reply: tuple[str, Any] = ("ok", fn(*args, **kwargs))
        except Exception as exc:  # noqa: BLE001 - raised again in the parent
            reply = ("error", exc)
        try:
            conn.send(reply)
        except Exception as exc:  # noqa: BLE001 - a result or error that does not pickle
            said = reply[1] if reply[0] == "error" else exc
            conn.send(("error", RuntimeError(f"{type(said).__name__}: {said}")))


def _ending(code: int | None) -> str:
    if code is None:
        return "still running"
    return f"killed by signal {-code}" if code < 0 else f"exit code {code}"


class _Worker:
    """One child process and the parent's end of its pipe."""

    def __init__(self, context: multiprocessing.context.SpawnContext, preload: Sequence[str]):
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child, tuple(preload)),
                                       name="loom-extractor", daemon=True)  # fmt: skip
        self.process.start()
        child.close()
        self.ready = False

    async def receive(self) -> Any:
        """The next message from the child; EOFError when it died. Waits on the pipe in
        the event loop (no thread is held)."""
        if not self.conn.poll():
            loop = asyncio.get_running_loop()
            arrived: asyncio.Future[None] = loop.create_future()
            fd = self.conn.fileno()

            def readable() -> None:
                if not arrived.done():
                    arrived.set_result(None)

            loop.add_reader(fd, readable)
            try:
                await arrived
            finally:
                loop.remove_reader(fd)
        return self.conn.recv()

    def kill(self) -> None:
        """Stops the child (at once: it holds nothing worth a goodbye) and frees its pipe."""
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)
        if self.process.exitcode is not None:
            self.process.close()
        self.conn.close()


class Extractor:
    """Runs module-level functions in ``workers`` child processes, each call stopped
    after ``timeout_seconds``. ``preload`` names modules each child imports before its
    first call; ``setting`` is quoted in errors (the variable that sets the time)."""

    def __init__(
        self,
        *,
        workers: int = 2,
        timeout_seconds: float = 20.0,
        preload: Sequence[str] = (),
        setting: str = "",
        start_seconds: float = 120.0,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, not {workers}")
        if timeout_seconds <= 0:
            raise ValueError(f"timeout_seconds must be more than 0, not {timeout_seconds}")
        self.workers = workers
        self.timeout_seconds = timeout_seconds
        self.preload = tuple(preload)
        self.setting = setting
        self.start_seconds = start_seconds
        self._context = multiprocessing.get_context("spawn")
        self._all: set[_Worker] = set()
        self._idle: list[_Worker] = []
        self._waiting: deque[asyncio.Future[_Worker]] = deque()
        self._closed = False

    @classmethod
    def from_settings(
        cls, settings: BaseSettings, *, workers: str, timeout_seconds: str, preload: Sequence[str]
    ) -> Extractor:
        """An extractor (not started) whose ``workers`` and ``timeout_seconds`` are the
        fields of ``settings`` so named; errors quote the time limit's variable."""
        return cls(
            workers=getattr(settings, workers),
            timeout_seconds=getattr(settings, timeout_seconds),
            preload=preload,
            setting=variable(type(settings), timeout_seconds),
        )

    def start(self) -> None:
        """Starts every worker now, so that the first calls find them warm (they get
        ready in the background). Without it, workers start on first need."""
        while len(self._all) < self.workers and not self._closed:
            self._idle.append(self._spawn())

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(*args, **kwargs)`` in a worker; what it raises is raised here."""
        worker = await self._acquire()
        try:
            await self._ready(worker)
            worker.conn.send((fn, args, kwargs))
            async with asyncio.timeout(self.timeout_seconds):
                kind, value = await worker.receive()
        except TimeoutError:
            self._replace(worker)
            said = f"took longer than {self.timeout_seconds:g} s"
            raise ExtractionFailed(
                f"{said}{f' ({self.setting})' if self.setting else ''} and was stopped",
                reason="timeout",
            ) from None
        except (EOFError, OSError):
            worker.process.join(1)  # it is going: its end says how
            how = _ending(worker.process.exitcode)
            self._replace(worker)
            raise ExtractionFailed(f"its process died ({how})", reason="died") from None
        except ExtractorUnavailable:
            self._replace(worker, respawn=False)  # the next call tries a new one
            raise
        except BaseException:  # cancelled mid-call: its answer would come to the next call
            self._replace(worker)
            raise
        self._release(worker)
        if kind == "error":
            raise value
        result: T = value
        return result

    def close(self) -> None:
        """Stops every worker; calls that wait for one raise ExtractorUnavailable."""
        self._closed = True
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_exception(ExtractorUnavailable("the extractor was closed"))
        for worker in list(self._all):
            self._retire(worker)
        self._idle.clear()

    async def __aenter__(self) -> Extractor:
        self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ── workers ──────────────────────────────────────────────────────────

    def _spawn(self) -> _Worker:
        worker = _Worker(self._context, self.preload)
        self._all.add(worker)
        return worker

    async def _acquire(self) -> _Worker:
        if self._closed:
            raise ExtractorUnavailable("the extractor was closed")
        while self._idle:
            worker = self._idle.pop()
            if worker.process.is_alive():
                return worker
            self._retire(worker)  # died while idle (killed from outside, say): not this call's
        if len(self._all) < self.workers:
            return self._spawn()
        waiter: asyncio.Future[_Worker] = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._release(waiter.result())  # handed over just as the wait was cancelled
            raise

    async def _ready(self, worker: _Worker) -> None:
        if worker.ready:
            return
        try:
            async with asyncio.timeout(self.start_seconds):
                kind, said = await worker.receive()
        except TimeoutError:
            raise ExtractorUnavailable(
                f"a worker did not start in {self.start_seconds:g} s"
            ) from None
        except (EOFError, OSError):
            worker.process.join(1)
            how = _ending(worker.process.exitcode)
            raise ExtractorUnavailable(f"a worker died as it started ({how})") from None
        if kind != "ready":
            raise ExtractorUnavailable(f"a worker could not start: {said}")
        worker.ready = True

    def _release(self, worker: _Worker) -> None:
        """Hands ``worker`` to the first call that waits, else keeps it idle."""
        if self._closed:
            self._retire(worker)
            return
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(worker)
                return
        self._idle.append(worker)

    def _replace(self, worker: _Worker, *, respawn: bool = True) -> None:
        """Stops ``worker`` (busy with a call nobody waits for any more) and, with
        ``respawn``, starts another in its place at once, to be warm when needed."""
        self._retire(worker)
        if respawn and not self._closed:
            self._release(self._spawn())
        elif self._waiting and not self._closed:
            self._release(self._spawn())  # a call waits: it must not wait for ever

    def _retire(self, worker: _Worker) -> None:
        self._all.discard(worker)
        if worker in self._idle:
            self._idle.remove(worker)
        worker.kill()
