"""`loom serve-model` as the ServingRuntime runs it: a process of its own serving one
predictor over KServe's V2 protocol on LOOM_PORT, called with the client functions get
from ``ctx.model``. A call made before the server is up waits for it (scale from
zero); concurrent segments share the batch and answer what the predictor answers
in-process; a malformed request is refused; SIGTERM stops the server."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("torch", reason="needs the models extra (torch)")
pytest.importorskip("moshi", reason="needs the models extra (moshi)")
pytest.importorskip("models.base", reason="needs the models extra (kserve)")

from loom.runtime.model_client import HttpModelClient, LocalModelClient, ModelRefused
from loom.services._process import free_port, log_tail, wait_until
from tests.models.stt.tiny import loaded, speech_like, stt_request

ROOT = Path(__file__).resolve().parents[2]
FRAME_MS = 80


class ServedModel:
    """One `loom serve-model --model-name NAME` process, started when asked, its output
    in a log file."""

    def __init__(self, name: str, env: dict[str, str], log: Path, service: str = "") -> None:
        # `service`: the InferenceService's name KServe passes (face-emotion), if not `name`
        self.name, self.log, self.service = name, log, service or name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                    "NO_TORCH_COMPILE": "1", "LOOM_PORT": str(self.port), **env}  # fmt: skip
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "loom", "serve-model", f"--model-name={self.service}"],
                cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def ready(self) -> bool:
        try:
            answer = httpx.get(f"{self.url}/v2/models/{self.name}/ready", timeout=2)
        except httpx.TransportError:
            return False
        return answer.status_code == 200 and answer.json().get("ready") is True

    def up(self) -> ServedModel:
        """Started (if it is not) and ready."""
        if not self.running:
            self.start()
        wait_until(f"loom serve-model {self.name}", self.ready, timeout=120,
                   process=self.process, log=self.log, interval=0.3)  # fmt: skip
        return self

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, as Kubernetes stops a pod: the exit status (killed if it lingers)."""
        assert self.process is not None
        process, self.process = self.process, None
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise AssertionError(
                f"serve-model {self.name} ignored SIGTERM for {timeout} s:\n{log_tail(self.log)}"
            ) from None


def served(
    name: str, env: dict[str, str], folder: Path, service: str = ""
) -> Iterator[ServedModel]:
    server = ServedModel(name, env, folder / "serve-model.log", service)
    try:
        yield server
    finally:
        if server.process is not None:
            server.stop()


@pytest.fixture(scope="module")
def stt_server(
    stt_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedModel]:
    """The stt server on the toy checkpoint (CPU, four slots); not started yet."""
    env = {"LOOM_STT_MODEL_DIR": str(stt_checkpoint), "LOOM_STT_DEVICE": "cpu",
           "LOOM_STT_MAX_STREAMS": "4", "LOOM_STT_THREADS": "1"}  # fmt: skip
    yield from served("stt", env, tmp_path_factory.mktemp("stt-server"))


def check_words(answer: dict[str, Any], seconds: float) -> None:
    """One token per 80 ms frame (the audio, the 0.5 s delay and 1 s of flush), words in
    order within the audio."""
    assert answer["duration_ms"] == round(1000 * seconds)
    assert len(answer["tokens"]) == -(-(answer["duration_ms"] + 1500) // FRAME_MS)
    last = 0
    for word in answer["words"]:
        assert word["word"].strip()
        assert last <= word["start_ms"] <= word["end_ms"] <= answer["duration_ms"]
        last = word["start_ms"]
    assert answer["text"] == " ".join(w["word"] for w in answer["words"])
    assert answer["model"] == {"name": "kyutai/stt-1b-en_fr", "version": "tiny0001@1"}


async def test_a_call_made_before_the_server_starts_waits_for_it(stt_server: ServedModel) -> None:
    if stt_server.running:  # scaled to zero, whatever ran before
        assert stt_server.stop() == 0
    client = HttpModelClient("stt", stt_server.url, wake_seconds=120)
    try:
        call = asyncio.create_task(client.infer(stt_request(speech_like(1.0, seed=3))))
        await asyncio.sleep(2)
        assert not call.done()  # nothing listens yet: the client keeps trying
        stt_server.start()
        answer = await asyncio.wait_for(call, 120)
    finally:
        await client.aclose()
    check_words(answer, 1.0)
    assert stt_server.ready()


async def test_two_segments_at_once_answer_what_the_predictor_answers_in_process(
    stt_server: ServedModel, stt_checkpoint: Path
) -> None:
    stt_server.up()
    segments = [(speech_like(2.0, seed=1), 2.0), (speech_like(1.2, seed=2), 1.2)]
    client = HttpModelClient("stt", stt_server.url, wake_seconds=30)
    try:
        answers = await asyncio.gather(*(client.infer(stt_request(pcm)) for pcm, _ in segments))
    finally:
        await client.aclose()
    with loaded(stt_checkpoint) as make:
        here = LocalModelClient("stt", make(stt_max_streams=4, stt_device="cpu"))
        expected = [await here.infer(stt_request(pcm)) for pcm, _ in segments]
    for answer, (_, seconds), local in zip(answers, segments, expected, strict=True):
        check_words(answer, seconds)
        assert 0 <= answer["stream"]["slot"] < 4
        assert len(set(answer["tokens"])) > 1  # the toy model does react to the audio
        assert answer["tokens"] == local["tokens"]
        assert answer["words"] == local["words"]


async def test_a_malformed_request_is_refused_and_the_server_goes_on(
    stt_server: ServedModel,
) -> None:
    stt_server.up()
    client = HttpModelClient("stt", stt_server.url, wake_seconds=30)
    good = stt_request(speech_like(0.5, seed=4))
    try:
        for bad, says in (
            ({**good, "audio": "not base64!"}, "not valid base64"),
            ({**good, "sample_rate": 4000}, "sample_rate must be an integer"),
            ({**good, "format": "mp3"}, "16-bit mono PCM"),
        ):
            with pytest.raises(ModelRefused, match=says):
                await client.infer(bad)
        answer = await client.infer(good)
    finally:
        await client.aclose()
    check_words(answer, 0.5)
    async with httpx.AsyncClient() as raw:  # a V2 request without the `request` input
        odd = await raw.post(f"{stt_server.url}/v2/models/stt/infer",
                             json={"inputs": [{"name": "audio", "shape": [1],
                                               "datatype": "BYTES", "data": ["x"]}]})  # fmt: skip
    assert odd.status_code == 400
    assert "expected one BYTES input named 'request'" in odd.text


def test_sigterm_stops_the_server_and_frees_its_port(stt_server: ServedModel) -> None:
    stt_server.up()
    pid = stt_server.process.pid if stt_server.process else 0
    assert stt_server.stop() == 0
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # reaped: nothing of it is left
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{stt_server.url}/v2/health/ready", timeout=2)


@pytest.fixture(scope="module")
def face_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedModel]:
    """The face_emotion server on a tiny classifier (CPU); not started yet."""
    pytest.importorskip("transformers", reason="needs the models extra (transformers)")
    cv2 = pytest.importorskip("cv2", reason="needs the models extra (opencv)")
    if not hasattr(cv2, "CascadeClassifier"):
        pytest.skip("this OpenCV has no Haar cascades")
    from tests.models.face_emotion.tiny import tiny_classifier

    folder = tmp_path_factory.mktemp("face-emotion-server")
    env = {
        "LOOM_FACE_EMOTION_MODEL_DIR": str(tiny_classifier(folder / "model")),
        "LOOM_FACE_EMOTION_MODEL_NAME": "tiny-vit",
        "LOOM_FACE_EMOTION_DEVICE": "cpu",
    }
    # started the way the ServingRuntime starts it: by the InferenceService's name
    yield from served("face_emotion", env, folder, service="face-emotion")


async def test_the_face_emotion_server_finds_the_astronauts_face(face_server: ServedModel) -> None:
    from tests.models.face_emotion.tiny import LABELS, astronaut, encoded

    face_server.up()
    client = HttpModelClient("face_emotion", face_server.url, wake_seconds=30)
    try:
        answer = await client.infer({"image": base64.b64encode(encoded(astronaut())).decode()})
        with pytest.raises(ModelRefused, match="not a readable JPEG, PNG or WebP"):
            await client.infer({"image": base64.b64encode(b"no image here").decode()})
    finally:
        await client.aclose()
    assert face_server.stop() == 0
    (face,) = answer["faces"]
    assert set(face["scores"]) == set(LABELS)
    assert face["emotion"] == max(face["scores"], key=face["scores"].get)
    assert answer["image"] == {"width": 512, "height": 512}
    assert answer["model"]["name"] == "tiny-vit"
