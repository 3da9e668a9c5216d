"""The stt predictor on a toy checkpoint of the real architecture (random weights, CPU):
many streams in one batch, slots reset and reused, a queue, words with times."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("moshi", reason="needs the models extra (moshi)")
pytest.importorskip("models.base", reason="needs the models extra (kserve)")

from kserve.errors import ServerNotReady

from loom.errors import ConfigError
from loom.runtime.model_client import LocalModelClient, ModelRefused, open_model_clients
from loom.settings import LoomSettings, load_settings
from models.stt.predictor import SttModel
from models.stt.settings import SttSettings
from tests.models.stt.tiny import speech_like, stt_request

FRAME_MS = 80


async def until(done: Callable[[], bool]) -> None:
    """Wait (briefly) for what the step loop does in the background."""
    for _ in range(2000):
        if done():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the step loop did not get there in 10 s")


def check_words(answer: dict[str, Any]) -> None:
    """Words in order, each within the audio, ending no earlier than it starts."""
    last_start = 0
    for word in answer["words"]:
        assert word["word"].strip()
        assert 0 <= word["start_ms"] <= word["end_ms"] <= answer["duration_ms"]
        assert word["start_ms"] >= last_start
        last_start = word["start_ms"]
    assert answer["text"] == " ".join(w["word"] for w in answer["words"])


async def test_two_devices_stream_at_once_then_a_third_request_reuses_a_slot(make_stt: Any) -> None:
    model = make_stt(stt_max_streams=2)
    phone, laptop = speech_like(2.0, seed=1), speech_like(1.2, seed=2)
    a, b = await asyncio.gather(model.infer_json(stt_request(phone)),
                                model.infer_json(stt_request(laptop)))  # fmt: skip
    stats = model.streams.stats
    assert stats.peak_busy == 2
    assert stats.busy == 0
    assert stats.peak_queued == 0
    assert {a["stream"]["slot"], b["stream"]["slot"]} == {0, 1}
    for answer, seconds in ((a, 2.0), (b, 1.2)):
        assert answer["duration_ms"] == round(seconds * 1000)
        # one token per 80 ms frame: the audio, then 0.5 s delay + 1 s of flush silence
        assert len(answer["tokens"]) == answer["stream"]["steps"] - 1
        assert len(answer["tokens"]) == -(-(answer["duration_ms"] + 1500) // FRAME_MS)
        assert len(set(answer["tokens"])) > 1  # the toy model does react to the audio
        check_words(answer)
    assert a["model"] == {"name": "kyutai/stt-1b-en_fr", "version": "tiny0001@1"}
    assert a["language"] is None

    c = await model.infer_json(stt_request(speech_like(0.5, seed=3)))
    assert c["stream"]["slot"] == 0  # freed slots are reused, lowest first
    assert model.streams.stats.done == 3
    assert model.streams.stats.busy == 0


async def test_with_one_slot_the_second_stream_waits_in_the_queue(make_stt: Any) -> None:
    model = make_stt(stt_max_streams=1, stt_language="en")
    first, second = await asyncio.gather(
        model.infer_json(stt_request(speech_like(1.0, seed=4))),
        model.infer_json(stt_request(speech_like(1.0, seed=5))),
    )
    assert first["stream"]["slot"] == second["stream"]["slot"] == 0
    assert model.streams.stats.peak_queued == 1
    assert model.streams.stats.peak_busy == 1
    assert second["stream"]["queued_ms"] > 0
    assert first["tokens"] != second["tokens"]
    assert second["language"] == "en"


async def test_a_stream_gets_the_same_tokens_alone_or_beside_another(make_stt: Any) -> None:
    """Slots are independent: resetting one for a new stream leaves the others as they
    were, and a stream that starts while another runs reads only its own state."""
    model = make_stt(stt_max_streams=2)
    mine, other = stt_request(speech_like(1.5, seed=6)), stt_request(speech_like(2.5, seed=7))
    alone = await model.infer_json(mine)
    other_alone = await model.infer_json(other)

    before = model.streams.stats.steps

    async def later() -> dict[str, Any]:
        await until(lambda: model.streams.stats.steps >= before + 12)  # the other is under way
        answer: dict[str, Any] = await model.infer_json(mine)
        return answer

    beside_other, beside = await asyncio.gather(model.infer_json(other), later())
    assert (beside_other["stream"]["slot"], beside["stream"]["slot"]) == (0, 1)
    assert beside["tokens"] == alone["tokens"]
    assert beside_other["tokens"] == other_alone["tokens"]


async def test_audio_at_any_rate_is_resampled_to_mimis_24_khz(make_stt: Any) -> None:
    model = make_stt(stt_max_streams=2)
    at_48k = await model.infer_json(stt_request(speech_like(1.0, seed=8, rate=48_000), 48_000))
    at_24k = await model.infer_json(stt_request(speech_like(1.0, seed=8, rate=24_000), 24_000))
    assert at_48k["duration_ms"] == at_24k["duration_ms"] == 1000
    assert len(at_48k["tokens"]) == len(at_24k["tokens"])
    empty = await model.infer_json(stt_request(speech_like(0.0)))
    assert empty["words"] == []
    assert empty["duration_ms"] == 0


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"format": "wav"}, "not 'wav'"),
        ({"sample_rate": 4000}, "sample_rate must be"),
        ({"sample_rate": "16000"}, "sample_rate must be"),
        ({"audio": "not base64!"}, "not valid base64"),
        ({"audio": "AAEC"}, "not whole 16-bit samples"),
        ({"audio": None}, "audio must be a base64 string"),
    ],
)
async def test_malformed_requests_are_refused(make_stt: Any, change: dict[str, Any],
                                              reason: str) -> None:  # fmt: skip
    client = LocalModelClient("stt", make_stt(stt_max_streams=1, stt_warmup=False))
    with pytest.raises(ModelRefused, match=reason):
        await client.infer({**stt_request(speech_like(0.2)), **change})


async def test_audio_longer_than_a_request_may_hold_is_refused(make_stt: Any) -> None:
    client = LocalModelClient("stt", make_stt(stt_max_streams=1, stt_max_seconds=1.0))
    with pytest.raises(ModelRefused, match="longer than the 1 s"):
        await client.infer(stt_request(speech_like(1.5)))


async def test_a_full_queue_answers_not_ready_so_clients_come_back(make_stt: Any) -> None:
    model = make_stt(stt_max_streams=1, stt_max_queued=0)
    first = asyncio.ensure_future(model.infer_json(stt_request(speech_like(1.0, seed=9))))
    await until(lambda: model.streams.stats.busy > 0)
    with pytest.raises(ServerNotReady, match="busy"):
        await model.infer_json(stt_request(speech_like(0.3)))
    assert (await first)["stream"]["slot"] == 0


async def test_a_request_given_up_frees_its_slot(make_stt: Any) -> None:
    model = make_stt(stt_max_streams=1)
    gone = asyncio.ensure_future(model.infer_json(stt_request(speech_like(5.0))))
    await until(lambda: model.streams.stats.busy > 0)
    gone.cancel()
    answer = await model.infer_json(stt_request(speech_like(0.3, seed=10)))
    assert answer["stream"]["slot"] == 0
    assert answer["stream"]["queued_ms"] < 1000
    assert model.streams.stats.done == 1


def test_a_missing_or_incomplete_checkpoint_is_a_clear_error(stt_checkpoint: Path,
                                                             tmp_path: Path) -> None:  # fmt: skip
    with pytest.raises(ConfigError, match=r"LOOM_STT_MODEL_DIR=.*nowhere is not a directory"):
        SttModel("stt", SttSettings(stt_model_dir=str(tmp_path / "nowhere"))).load()
    partial = tmp_path / "partial"
    shutil.copytree(stt_checkpoint, partial)
    (partial / "tokenizer_tiny.model").unlink()
    with pytest.raises(ConfigError, match=r"lacks tokenizer_tiny\.model"):
        SttModel("stt", SttSettings(stt_model_dir=str(partial))).load()
    shutil.copy(stt_checkpoint / "tokenizer_tiny.model", partial)
    config = json.loads((partial / "config.json").read_text())
    (partial / "config.json").write_text(json.dumps({**config, "model_type": "moshi"}))
    with pytest.raises(ConfigError, match="not speech-to-text"):
        SttModel("stt", SttSettings(stt_model_dir=str(partial))).load()


async def test_a_failed_step_fails_its_streams_and_the_server_goes_on(
    make_stt: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = make_stt(stt_max_streams=2)
    engine = model.streams
    real_step = engine._step

    def broken(reset: Any) -> list[int]:
        monkeypatch.setattr(engine, "_step", real_step)  # fails once
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(engine, "_step", broken)
    with pytest.raises(RuntimeError, match="illegal memory access"):
        await model.infer_json(stt_request(speech_like(0.5, seed=11)))
    assert engine.stats.busy == 0
    answer = await model.infer_json(stt_request(speech_like(0.5, seed=11)))
    assert answer["stream"]["slot"] == 0


async def test_a_host_running_stt_in_process_stops_it_when_it_closes(
    stt_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LOOM_MODEL_URLS", raising=False)
    for name, value in {"LOOM_STT_MODEL_DIR": str(stt_checkpoint), "LOOM_STT_DEVICE": "cpu",
                        "LOOM_STT_MAX_STREAMS": "2", "LOOM_STT_THREADS": "1"}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    async with open_model_clients(["stt"], load_settings(LoomSettings)) as clients:
        client = clients["stt"]
        assert isinstance(client, LocalModelClient)
        answer = await client.infer(stt_request(speech_like(0.5, seed=12)))
        model = client.predictor
    assert answer["duration_ms"] == 500
    assert model.streams is None  # its step loop and torch thread are gone
    assert not model.ready
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "stt-steps"]


async def test_stopping_answers_waiting_requests_503_instead_of_leaving_them(make_stt: Any) -> None:
    model = make_stt(stt_max_streams=1, stt_warmup=False)
    first = asyncio.ensure_future(model.infer_json(stt_request(speech_like(3.0, seed=11))))
    second = asyncio.ensure_future(model.infer_json(stt_request(speech_like(3.0, seed=12))))
    while model.streams.stats.busy == 0:  # noqa: ASYNC110 — the engine exposes no event
        await asyncio.sleep(0.005)
    model.stop()  # what KServe's ModelServer does on SIGTERM or scale-down
    done, waiting = await asyncio.wait([first, second], timeout=10)
    assert not waiting
    refused = [t.exception() for t in done if t.exception() is not None]
    assert refused
    assert all(isinstance(e, ServerNotReady) and "stopping" in str(e) for e in refused)
