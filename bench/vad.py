"""Voice activity detection (Silero VAD): real-time factor per core — seconds of audio
handled per CPU-second of this process — for the model alone (one stream, and streams
batched into one call) and for the whole function (decode, resample, state, segments).

Chunks are 1 s (31 frames of 32 ms), as phones send them. CPU time is the process's
(all its threads), so the figure is per core whatever the libraries do with threads;
each model runs with one thread (LOOM_VAD_THREADS=1). Needs no services.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from functions.vad.handler import handle, open_vad
from functions.vad.settings import VadSettings
from functions.vad.silero import CONTEXT, FRAME, OnnxBackend, Request, load_backend
from loom.runtime.state import MemoryStateStore
from loom.store import LocalBlobStore
from loom.testing import FunctionHarness
from tests.functions.vad.audio import chunked, silence, speech_like

TITLE = "VAD (Silero): real-time factor per core, one stream and batched"
GOAL = ">= 500x batched"
SECONDS = float(os.environ.get("LOOM_BENCH_VAD_SECONDS", "1.5"))  # CPU time per measure
FRAMES = 31  # one 1 s chunk


def _timed(work: Callable[[list[Request]], object], requests: list[Request]) -> float:
    """Audio seconds per CPU second of ``work(requests)``, run again and again."""
    audio = sum(len(frames) for frames, _ in requests) * FRAME / 16_000
    work(requests)  # warm up
    done, started = 0.0, time.process_time()
    while time.process_time() - started < SECONDS:
        work(requests)
        done += audio
    return done / (time.process_time() - started)


def _requests(streams: int) -> list[Request]:
    rng = np.random.default_rng(streams)
    audio = (rng.standard_normal((streams, FRAMES * FRAME)) * 0.05).astype(np.float32)
    out = []
    for row in audio:
        frames = np.zeros((FRAMES, CONTEXT + FRAME), np.float32)
        frames[:, CONTEXT:] = row.reshape(FRAMES, FRAME)
        frames[1:, :CONTEXT] = frames[:-1, -CONTEXT:]
        out.append((frames, np.zeros((2, 128), np.float32)))
    return out


def _model_rows() -> list[dict[str, Any]]:
    rows = []
    onnx = OnnxBackend()
    backends: list[tuple[str, Any]] = [("onnx", onnx)]
    if importlib.util.find_spec("threadpoolctl"):
        backends.append(("numpy", load_backend("numpy")))
    if importlib.util.find_spec("torch"):
        backends.append(("torch", load_backend("torch")))
    for streams in (1, 6, 64):
        requests = _requests(streams)
        if streams == 1:
            rows.append(_row("model onnx, 1 stream (sequence model)", _timed(onnx.run, requests)))
        else:
            one_each = _timed(lambda r: [onnx.one(*q) for q in r], requests)
            rows.append(_row(f"model onnx, {streams} streams, one sequence call each", one_each))
            together = _timed(onnx.batched, requests)
            rows.append(_row(f"model onnx, {streams} streams stepped together", together, GOAL))
        for name, backend in backends[1:]:
            label = f"model {name}, {streams} stream{'s' if streams > 1 else ''}"
            rtf = _timed(backend.run, requests)
            rows.append(_row(label, rtf, GOAL if streams > 1 else ""))
    return rows


async def _function(backend: str, devices: int, rate: int, channels: int) -> float:
    """Whole handler: ``devices`` devices at once, each 1 s chunks of speech and silence."""
    speech = np.concatenate([silence(1.0), speech_like(), silence(1.0)])  # 5 s at 16 kHz
    if rate != 16_000:
        stretched = np.interp(np.arange(len(speech) * rate // 16_000) * 16_000 / rate,
                              np.arange(len(speech)), speech)  # fmt: skip
        speech = stretched.astype(np.int16)
    if channels == 2:
        speech = np.stack([speech, speech], axis=1).reshape(-1)
    fmt = "wav" if channels == 2 else "pcm_s16le"
    streams = {f"bench-{d}": chunked(speech, rate, 1.0, device=f"bench-{d}", fmt=fmt,
                                     channels=channels) for d in range(devices)}  # fmt: skip
    config = VadSettings(vad_backend=backend)  # type: ignore[arg-type]
    blobs = LocalBlobStore(Path(os.environ.get("TMPDIR", "/tmp")) / "loom-bench-vad")
    async with open_vad(config, states=MemoryStateStore(), blobs=blobs) as vad:
        harness = FunctionHarness(handle, settings=config, state=vad)

        async def device(events: list[Any]) -> None:
            for event in events:
                await harness.call(event)

        await asyncio.gather(*(device(e) for e in streams.values()))  # warm up
        audio, started = 0.0, time.process_time()
        while time.process_time() - started < SECONDS:
            later = {d: [_later(e, audio + 10.0) for e in events] for d, events in streams.items()}
            await asyncio.gather(*(device(e) for e in later.values()))
            audio += devices * len(speech) / channels / rate
        return audio / (time.process_time() - started)


def _later(event: Any, seconds: float) -> Any:
    """The same chunk, ``seconds`` later: the stream goes on instead of being late."""
    from dataclasses import replace
    from datetime import datetime, timedelta

    when = datetime.fromisoformat(event.data["timestamp"]) + timedelta(seconds=seconds)
    data = {**event.data, "timestamp": when.isoformat()}
    return replace(event, id=f"{event.id}-{seconds}", data=data)


def _function_rows() -> list[dict[str, Any]]:
    import logging

    logging.getLogger().setLevel(logging.WARNING)
    backends = ["onnx"] + (["numpy"] if importlib.util.find_spec("threadpoolctl") else [])
    rows = []
    for backend in backends:
        for devices, rate, channels in ((1, 16_000, 1), (1, 48_000, 2), (6, 16_000, 1)):
            rtf = asyncio.run(_function(backend, devices, rate, channels))
            what = f"{rate // 1000} kHz {'stereo WAV' if channels == 2 else 'mono PCM'}"
            rows.append(_row(f"function {backend}, {devices} device(s) at once, {what}", rtf,
                             GOAL if devices > 1 else ""))  # fmt: skip
    return rows


def _row(measure: str, value: float, goal: str = "") -> dict[str, Any]:
    return {"measure": measure, "value": value, "unit": "x real time per core", "goal": goal}


def run(services: object = None) -> list[dict[str, Any]]:
    """The rows of the table (``python -m bench vad``; needs none of the services)."""
    from loom.logging import configure_logging

    configure_logging("WARNING")
    return _model_rows() + _function_rows()
