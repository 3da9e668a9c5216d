"""The stt engine on a GPU: CUDA graphs captured at warm-up, slots reset between
replays, streams independent of what the other slots hold."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

torch = pytest.importorskip("torch", reason="needs the models extra (torch)")
pytest.importorskip("moshi", reason="needs the models extra (moshi)")

from tests.models.stt.tiny import speech_like, stt_request  # noqa: E402

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU"),
]


async def test_streams_on_the_gpu_do_not_disturb_each_other(make_stt: Any) -> None:
    model = make_stt(stt_max_streams=4, stt_device="cuda", stt_dtype="float32")
    requests = [stt_request(speech_like(1.0 + 0.4 * i, seed=20 + i)) for i in range(6)]
    alone = [await model.infer_json(r) for r in requests]
    together = await asyncio.gather(*(model.infer_json(r) for r in requests))
    assert model.streams.stats.peak_busy == 4
    assert model.streams.stats.peak_queued == 2
    assert [a["tokens"] for a in together] == [a["tokens"] for a in alone]
    assert len({a["stream"]["slot"] for a in together}) == 4
