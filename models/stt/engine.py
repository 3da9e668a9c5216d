"""Many speech segments through one Kyutai STT model at once: batch slots, one step loop.

The model is streaming: Mimi turns each 80 ms frame of 24 kHz audio into audio tokens,
and the LM (moshi's ``LMGen``) reads them and says one text token per frame. Both keep
a streaming state per batch item (convolution histories, attention caches, offsets),
and moshi can reset any subset of the batch (``reset_streaming(mask)``). So the engine
keeps ``slots`` batch items open for the life of the server:

- a request (one segment's audio) waits in a queue until a slot is free, takes the
  lowest free one, and that slot's state is reset at the next step;
- one loop steps the whole batch, one frame per slot per step, for as long as any slot
  is busy: Mimi encodes the frame of every slot, ``LMGen`` steps all of them together;
  idle slots carry whatever they last held and their tokens are ignored (they are reset
  before reuse);
- a segment is done when its last frame (after silence fed so that the model's delayed
  words come out) has been stepped; its slot is free for the next request at once.

Every segment starts with one frame of silence: the LM's first step after a reset reads
its initial tokens, not the audio (moshi's reference feeds the first frame twice; a
silent frame does the same without stepping Mimi twice for one slot). The loop is not
paced: a step runs as soon as the previous one ends, so a segment takes its number of
frames times the step time. Torch runs on one dedicated thread, so the server's event
loop stays free and CUDA graphs are captured and replayed on the same thread.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from loom.logging import get_logger

__all__ = ["Busy", "Stats", "SttEngine", "Transcript"]

log = get_logger("loom.models.stt")
_GEN_KEYS = {"use_sampling", "temp", "temp_text", "top_k", "top_k_text"}


class Busy(RuntimeError):
    """Every slot is busy and the queue is full."""


@dataclass(frozen=True)
class Transcript:
    """The text tokens of one segment, one per frame of its audio (silence before and
    after included), and where and how long it ran."""

    tokens: list[int]
    slot: int
    queued_s: float
    steps: int


@dataclass
class Stats:
    busy: int = 0
    queued: int = 0
    peak_busy: int = 0
    peak_queued: int = 0
    steps: int = 0
    step_seconds: float = 0.0
    done: int = 0

    @property
    def mean_step_ms(self) -> float:
        return 1000 * self.step_seconds / self.steps if self.steps else 0.0


@dataclass(eq=False)
class _Stream:
    frames: np.ndarray  # (n, frame_size) float32: silence, the audio, silence
    future: asyncio.Future[Transcript]
    enqueued: float
    slot: int = -1
    queued_s: float = 0.0
    step: int = 0
    tokens: list[int] = field(default_factory=list)


def _encoder_only(mimi: Any) -> None:
    """Leave Mimi's decoder out of streaming: it is never run here, and its states (an
    attention cache among them) would take GPU memory in every slot."""
    from moshi.modules.streaming import StreamingModule

    for name in ("decoder", "decoder_transformer", "upsample"):
        part = getattr(mimi, name, None)
        for module in part.modules() if part is not None else ():
            if isinstance(module, StreamingModule):
                module.set_streaming_detached(True)


class SttEngine:
    """``slots`` streams of Mimi + ``LMGen`` stepped together (see the module's doc)."""

    def __init__(
        self,
        mimi: Any,
        lm: Any,
        *,
        slots: int,
        max_queued: int,
        gen_config: dict[str, Any] | None = None,
        silence_prefix_s: float = 0.0,
        flush_s: float = 1.5,
    ) -> None:
        import torch
        from moshi.models.lm import LMGen

        self._torch = torch
        self.mimi = mimi
        self.slots = slots
        self.max_queued = max_queued
        self.device = lm.device
        self.sample_rate = int(mimi.sample_rate)
        self.frame_size = int(mimi.sample_rate / mimi.frame_rate)
        self.frame_ms = 1000.0 / float(mimi.frame_rate)
        self.prefix = round(silence_prefix_s * self.sample_rate)
        self.flush = round(flush_s * self.sample_rate)
        wanted = {k: v for k, v in (gen_config or {}).items() if k in _GEN_KEYS}
        self.lm_gen = LMGen(lm, support_out_of_sync=True, **{"temp": 0.0, "temp_text": 0.0,
                                                              **wanted})  # fmt: skip
        _encoder_only(mimi)
        self.stats = Stats()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="stt-step")
        self._streaming = ExitStack()
        self._host: Any = None
        self._batch = np.zeros((0, self.frame_size), np.float32)
        try:
            self._run_on_thread(self._open)
        except BaseException:  # out of memory, say: leave Mimi and the LM as they were
            self._run_on_thread(self._streaming.close)
            self._executor.shutdown(wait=True)
            raise
        self._free = list(range(slots))
        self._reset = np.zeros(slots, dtype=bool)
        self._pending: deque[_Stream] = deque()
        self._active: dict[int, _Stream] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None

    # ── torch, on the engine's own thread ────────────────────────────────
    def _run_on_thread(self, work: Any, *args: Any) -> Any:
        return self._executor.submit(work, *args).result()

    def _open(self) -> None:
        torch = self._torch
        self._streaming.enter_context(self.mimi.streaming(self.slots))
        self._streaming.enter_context(self.lm_gen.streaming(self.slots))
        pinned = self.device.type == "cuda"
        self._host = torch.zeros((self.slots, self.frame_size), dtype=torch.float32,
                                 pin_memory=pinned)  # fmt: skip
        self._batch = self._host.numpy()  # filled in place by the loop

    def _step(self, reset: np.ndarray | None) -> list[int]:
        torch = self._torch
        with torch.no_grad():
            if reset is not None:
                mask = torch.from_numpy(reset).to(self.device)
                self.mimi.reset_streaming(mask)
                self.lm_gen.reset_streaming(mask)
            pcm = self._host.to(self.device, non_blocking=True)
            codes = self.mimi.encode(pcm.view(self.slots, 1, self.frame_size))
            out = self.lm_gen.step(codes)
            if out is None:  # only when not support_out_of_sync
                raise RuntimeError("LMGen gave no tokens")
            tokens: list[int] = out[:, 0, 0].cpu().tolist()
            return tokens

    def warm_up(self, steps: int = 3) -> None:
        """Step the full batch ``steps`` times on silence (CUDA graphs are captured on the
        second), then reset every slot."""
        self._batch[:] = 0.0
        everything = np.ones(self.slots, dtype=bool)
        for i in range(steps):
            self._run_on_thread(self._step, everything if i == 0 else None)
        self._reset[:] = True

    def close(self) -> None:
        """Stop stepping. Requests still in a slot or waiting for one fail with
        :class:`Busy` (a 503: their clients try again, on another replica or later)
        instead of waiting for a loop that is gone."""
        streams = [*self._active.values(), *self._pending]
        self._active.clear()
        self._pending.clear()

        def fail() -> None:
            for stream in streams:
                if not stream.future.done():
                    stream.future.set_exception(Busy("the stt server is stopping; try again"))

        if self._loop is not None and not self._loop.is_closed():
            try:
                here = asyncio.get_running_loop()
            except RuntimeError:
                here = None
            if here is self._loop:
                fail()
            else:
                self._loop.call_soon_threadsafe(fail)
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self._run_on_thread(self._streaming.close)
        self._executor.shutdown(wait=True)

    # ── requests ─────────────────────────────────────────────────────────
    def frames_for(self, samples: int) -> int:
        """Steps a segment of ``samples`` takes (the silent first frame included)."""
        total = self.frame_size + self.prefix + samples + self.flush
        return math.ceil(total / self.frame_size)

    async def transcribe(self, pcm: np.ndarray) -> Transcript:
        """The text tokens of ``pcm`` (float32 mono at ``sample_rate``): one per frame of
        the silence prefix, the audio and the flush, in order."""
        self._ensure_running()
        assert self._wake is not None
        if len(self._pending) >= len(self._free) + self.max_queued:
            raise Busy(f"all {self.slots} stt slots are busy and {len(self._pending)} "
                       "requests are waiting")  # fmt: skip
        frames = np.zeros(self.frames_for(len(pcm)) * self.frame_size, np.float32)
        start = self.frame_size + self.prefix
        frames[start : start + len(pcm)] = pcm
        stream = _Stream(frames.reshape(-1, self.frame_size),
                         asyncio.get_running_loop().create_future(), time.monotonic())  # fmt: skip
        self._pending.append(stream)
        self.stats.queued = len(self._pending)
        self.stats.peak_queued = max(
            self.stats.peak_queued, max(0, len(self._pending) - len(self._free))
        )
        self._wake.set()
        return await stream.future  # cancelled: the loop frees its slot at the next step

    def _ensure_running(self) -> None:
        loop = asyncio.get_running_loop()
        if self._task is not None and not self._task.done() and self._loop is loop:
            return
        # first request, or a new event loop (the old one's requests are gone with it)
        self._loop, self._wake = loop, asyncio.Event()
        self._pending.clear()
        self._active.clear()
        self._free = list(range(self.slots))
        self._reset[:] = True
        self._task = loop.create_task(self._run(), name="stt-steps")

    # ── the step loop ────────────────────────────────────────────────────
    async def _run(self) -> None:
        try:
            await self._steps()
        except Exception as exc:  # a bug: nobody may wait forever (the next request restarts)
            log.error("stt.loop_failed", error=f"{type(exc).__name__}: {exc}")
            for stream in [*self._active.values(), *self._pending]:
                if not stream.future.done():
                    stream.future.set_exception(exc)
            self._active.clear()
            self._pending.clear()
            raise

    async def _steps(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._wake is not None
        while True:
            self._admit()
            if not self._active:
                self._wake.clear()
                if not self._pending:
                    await self._wake.wait()
                continue
            for slot, stream in self._active.items():
                self._batch[slot] = stream.frames[stream.step]
            reset = self._reset.copy() if self._reset.any() else None
            self._reset[:] = False
            started = time.perf_counter()
            try:
                tokens = await loop.run_in_executor(self._executor, self._step, reset)
            except Exception as exc:  # noqa: BLE001 - it fails the streams in it, not the server
                log.error("stt.step_failed", error=f"{type(exc).__name__}: {exc}",
                          streams=len(self._active))  # fmt: skip
                for slot, stream in list(self._active.items()):
                    if not stream.future.done():
                        stream.future.set_exception(exc)
                    self._release(slot)
                continue
            self.stats.steps += 1
            self.stats.step_seconds += time.perf_counter() - started
            self._advance(tokens)

    def _admit(self) -> None:
        now = time.monotonic()
        while self._pending and self._free:
            stream = self._pending.popleft()
            if stream.future.done():  # the client gave up while it waited
                continue
            stream.slot = heapq.heappop(self._free)
            stream.queued_s = now - stream.enqueued
            self._active[stream.slot] = stream
            self._reset[stream.slot] = True
        self.stats.busy, self.stats.queued = len(self._active), len(self._pending)
        self.stats.peak_busy = max(self.stats.peak_busy, self.stats.busy)

    def _advance(self, tokens: list[int]) -> None:
        for slot, stream in list(self._active.items()):
            if stream.future.done():  # cancelled: nobody waits for it any more
                self._release(slot)
                continue
            if stream.step > 0:  # the first step reads the LM's initial tokens
                stream.tokens.append(tokens[slot])
            stream.step += 1
            if stream.step == len(stream.frames):
                stream.future.set_result(
                    Transcript(stream.tokens, slot, stream.queued_s, stream.step)
                )
                self.stats.done += 1
                self._release(slot)

    def _release(self, slot: int) -> None:
        del self._active[slot]
        heapq.heappush(self._free, slot)
        self.stats.busy = len(self._active)
