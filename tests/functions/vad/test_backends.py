"""The model: the wheel's ONNX files on onnxruntime (no torch), its TorchScript file on
torch where torch is installed, the same probabilities either way, and concurrent
streams sharing model calls."""

from __future__ import annotations

import asyncio
import importlib.util
import subprocess
import sys

import numpy as np
import pytest

from functions.vad.batcher import Batcher
from functions.vad.settings import VadSettings
from functions.vad.silero import CONTEXT, FRAME, OnnxBackend, load_backend
from loom.errors import ConfigError
from loom.settings import load_settings
from tests.functions.vad.audio import chunked, silence, speech_like
from tests.functions.vad.conftest import MakeRig

SPEECH = np.concatenate([silence(1), speech_like(), silence(1)])


def _requests(count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``count`` streams of different lengths, as frames with their context."""
    audio = SPEECH.astype(np.float32) / 32768
    out = []
    for i in range(count):
        frames = (len(audio) // FRAME) - 7 * i
        body = audio[: frames * FRAME].reshape(frames, FRAME)
        with_context = np.zeros((frames, CONTEXT + FRAME), np.float32)
        with_context[:, CONTEXT:] = body
        with_context[1:, :CONTEXT] = body[:-1, -CONTEXT:]
        out.append((with_context, np.zeros((2, 128), np.float32)))
    return out


def test_onnx_stepped_together_equals_one_call_per_stream() -> None:
    backend = OnnxBackend()
    requests = _requests(5)
    together = backend.batched(requests)
    alone = [backend.one(frames, state) for frames, state in requests]
    for (p1, s1), (p2, s2) in zip(together, alone, strict=True):
        assert p1.shape == p2.shape
        assert np.abs(p1 - p2).max() < 1e-4
        assert np.abs(s1 - s2).max() < 1e-3
    assert max(p.max() for p, _ in alone) > 0.9  # the speech is in there


def test_the_onnx_backend_does_not_import_torch() -> None:
    code = (
        "import sys; from functions.vad.silero import load_backend; import numpy as np;"
        "b = load_backend('onnx'); b.run([(np.zeros((3, 576), np.float32),"
        " np.zeros((2, 128), np.float32))]); assert 'torch' not in sys.modules, 'torch'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@pytest.mark.skipif(importlib.util.find_spec("threadpoolctl") is None,
                    reason="threadpoolctl is not installed")  # fmt: skip
def test_numpy_gives_the_onnx_probabilities_from_the_onnx_weights() -> None:
    requests = _requests(5)
    numpy_answers = load_backend("numpy").run(requests)
    onnx_answers = OnnxBackend().batched(requests)
    for (p1, s1), (p2, s2) in zip(numpy_answers, onnx_answers, strict=True):
        assert np.abs(p1 - p2).max() < 1e-4
        assert np.abs(s1 - s2).max() < 1e-3


@pytest.mark.skipif(importlib.util.find_spec("threadpoolctl") is None,
                    reason="threadpoolctl is not installed")  # fmt: skip
async def test_the_numpy_backend_finds_the_same_segments(make_rig: MakeRig) -> None:
    onnx = await (await make_rig()).run(chunked(SPEECH, 16_000, 0.5))
    fast = await (await make_rig(vad_backend="numpy")).run(chunked(SPEECH, 16_000, 0.5))
    assert [(e.data["start_ms"], e.data["end_ms"]) for e in fast] == [
        (e.data["start_ms"], e.data["end_ms"]) for e in onnx
    ]
    assert fast[0].data["model"]["version"].endswith("(numpy)")


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed")
def test_torch_gives_the_onnx_probabilities() -> None:
    requests = _requests(3)
    torch_answers = load_backend("torch").run(requests)
    onnx_answers = OnnxBackend().batched(requests)
    for (p1, _), (p2, _) in zip(torch_answers, onnx_answers, strict=True):
        assert np.abs(p1 - p2).max() < 1e-4


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed")
async def test_the_torch_backend_finds_the_same_segments(make_rig: MakeRig) -> None:
    onnx = await (await make_rig()).run(chunked(SPEECH, 16_000, 0.5))
    torch = await (await make_rig(vad_backend="torch")).run(chunked(SPEECH, 16_000, 0.5))
    assert [e.data["start_ms"] for e in torch] == [e.data["start_ms"] for e in onnx]
    assert torch[0].data["model"]["version"].endswith("(torch)")


async def test_concurrent_streams_share_model_calls(make_rig: MakeRig) -> None:
    rig = await make_rig()
    devices = [f"phone-{i}" for i in range(6)]
    streams = {d: chunked(SPEECH, 16_000, 0.5, device=d) for d in devices}

    async def device(name: str) -> list:
        made = []
        for event in streams[name]:
            made += await rig.call(event)
        return made

    results = await asyncio.gather(*(device(d) for d in devices))
    stats = rig.vad.batcher.stats
    assert stats.largest > 1
    assert stats.calls < stats.streams
    alone = await (await make_rig()).run(streams[devices[0]])
    for made in results:
        assert [e.data["start_ms"] for e in made] == [e.data["start_ms"] for e in alone]
        assert [e.data["speech_probability"] for e in made] == pytest.approx(
            [e.data["speech_probability"] for e in alone], abs=1e-3
        )


async def test_a_failing_model_call_fails_every_caller_in_it() -> None:
    class Broken:
        name = "broken"

        def run(self, requests):
            raise RuntimeError("model crashed")

    batcher = Batcher(Broken())
    frames, state = _requests(1)[0]
    calls = [batcher.infer(frames, state) for _ in range(3)]
    for outcome in await asyncio.gather(*calls, return_exceptions=True):
        assert isinstance(outcome, RuntimeError)


def test_padding_longer_than_the_silence_that_ends_speech_is_refused() -> None:
    with pytest.raises(ConfigError, match="vad_speech_pad_ms"):
        load_settings(VadSettings, vad_speech_pad_ms=500, vad_min_silence_ms=200)
    with pytest.raises(ConfigError, match="LOOM_VAD_BACKEND"):
        load_settings(VadSettings, vad_backend="tensorflow")
    assert VadSettings(vad_threshold=0.6).neg_threshold == pytest.approx(0.45)
