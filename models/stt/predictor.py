"""The stt model server: Kyutai speech-to-text (moshi) over KServe's V2 protocol.

Request (one speech segment; JSON, see ``models/base.py``)::

    {"audio": "<base64 of 16-bit little-endian mono PCM>", "sample_rate": 16000,
     "format": "pcm_s16le", "tokens": false}

Any rate from 8 to 192 kHz; the server resamples to Mimi's 24 kHz. At most
``LOOM_STT_MAX_SECONDS`` of audio (else 400). Answer::

    {"text": "hello world", "language": null, "duration_ms": 1520,
     "words": [{"word": "hello", "start_ms": 80, "end_ms": 560}, …],
     "model": {"name": "kyutai/stt-1b-en_fr", "version": "…"},
     "stream": {"slot": 3, "queued_ms": 0, "steps": 39}}

Word times are milliseconds from the start of the audio given; ``"tokens": true`` adds
the model's text token per 80 ms frame. Each request is one stream in a batch slot
(``models/stt/engine.py``); when every slot is busy it waits, and when the queue is full
the server answers 503 so clients try again later.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import os
from pathlib import Path
from typing import Any

import numpy as np
from kserve.errors import InvalidInput, ServerNotReady

from loom.errors import ConfigError
from loom.logging import get_logger
from loom.runtime.models import model
from loom.settings import load_settings
from models.base import JsonModel
from models.stt.checkpoint import Checkpoint, load_checkpoint
from models.stt.engine import Busy, SttEngine, Transcript
from models.stt.settings import SttSettings
from models.stt.words import words_from_tokens

__all__ = ["SttModel", "decode_request"]

log = get_logger("loom.models.stt")
MIN_RATE, MAX_RATE = 8_000, 192_000


def decode_request(payload: dict[str, Any], max_seconds: float) -> tuple[np.ndarray, int]:
    """The request's samples (float32 mono) and their rate; InvalidInput if malformed."""
    fmt = payload.get("format", "pcm_s16le")
    if fmt != "pcm_s16le":
        raise InvalidInput(f"stt reads 16-bit mono PCM (format 'pcm_s16le'), not {fmt!r}")
    rate = payload.get("sample_rate")
    if not isinstance(rate, int) or isinstance(rate, bool) or not MIN_RATE <= rate <= MAX_RATE:
        raise InvalidInput(f"sample_rate must be an integer from {MIN_RATE} to {MAX_RATE} Hz")
    audio = payload.get("audio")
    if not isinstance(audio, str):
        raise InvalidInput("audio must be a base64 string of 16-bit little-endian PCM")
    if len(audio) > (max_seconds * rate * 2 + 3) * 4 // 3 + 4:
        raise InvalidInput(f"the audio is longer than the {max_seconds:g} s one request may hold")
    try:
        raw = base64.b64decode(audio, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput(f"audio is not valid base64: {exc}") from None
    if len(raw) % 2:
        raise InvalidInput(f"{len(raw)} bytes of audio are not whole 16-bit samples")
    if len(raw) / 2 / rate > max_seconds:
        raise InvalidInput(f"the audio is longer than the {max_seconds:g} s one request may hold")
    samples = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    return samples, rate


def _resample(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    if rate == target or not len(samples):
        return samples
    import soxr  # type: ignore[import-untyped]

    return np.asarray(soxr.resample(samples, rate, target, quality="HQ"), dtype=np.float32)


@model(
    name="stt",
    storage_uri_env="LOOM_STT_STORAGE_URI",
    default_storage_uri="hf://kyutai/stt-1b-en_fr",
    gpu=True,
    memory="12Gi",  # torch and the CUDA runtime, weights staged on the host, queued audio
)
class SttModel(JsonModel):
    """Kyutai speech-to-text (moshi): many speech segments batched, words with times."""

    def __init__(self, name: str = "stt", settings: SttSettings | None = None) -> None:
        super().__init__(name)
        self.settings = settings or load_settings(SttSettings)
        self.streams: SttEngine | None = None
        self.checkpoint: Checkpoint | None = None

    def load(self) -> bool:
        import torch

        cfg = self.settings
        if cfg.stt_device == "cuda" and not torch.cuda.is_available():
            raise ConfigError("LOOM_STT_DEVICE=cuda but torch sees no CUDA device")
        cuda = cfg.stt_device == "cuda" or (cfg.stt_device == "auto" and torch.cuda.is_available())
        device = torch.device("cuda" if cuda else "cpu")
        dtype_name = (
            cfg.stt_dtype if cfg.stt_dtype != "auto" else ("bfloat16" if cuda else "float32")
        )
        if not cuda:
            # moshi compiles a few functions with torch.compile when first called: on CPU that
            # needs a C compiler and costs more than it gives. Read when moshi is imported.
            os.environ.setdefault("NO_TORCH_COMPILE", "1")
            if cfg.stt_threads:
                torch.set_num_threads(cfg.stt_threads)
        checkpoint = load_checkpoint(Path(cfg.stt_model_dir), device, getattr(torch, dtype_name))
        flush = cfg.stt_flush_seconds
        if flush is None:
            flush = checkpoint.audio_delay_s + 1.0
        self.streams = SttEngine(
            checkpoint.mimi,
            checkpoint.lm,
            slots=cfg.stt_max_streams,
            max_queued=cfg.stt_max_queued,
            gen_config=checkpoint.info.lm_gen_config,
            silence_prefix_s=checkpoint.silence_prefix_s,
            flush_s=flush,
        )
        if cfg.stt_warmup:
            self.streams.warm_up()
        self.checkpoint = checkpoint
        self.ready = True
        log.info("stt.loaded", device=str(device), dtype=dtype_name, slots=cfg.stt_max_streams,
                 delay_s=checkpoint.audio_delay_s, version=checkpoint.version)  # fmt: skip
        return True

    def stop(self) -> None:
        if self.streams is not None:
            self.streams.close()
            self.streams = None
        self.ready = False

    @property
    def model_info(self) -> dict[str, str]:
        uri = self.settings.stt_storage_uri
        info = {"name": uri.split("://", 1)[-1][:200] or "stt"}
        if self.checkpoint is not None and self.checkpoint.version:
            info["version"] = self.checkpoint.version[:100]
        return info

    async def infer(self, payload: dict[str, Any]) -> dict[str, Any]:
        engine, checkpoint = self.streams, self.checkpoint
        if engine is None or checkpoint is None:
            raise ServerNotReady("stt is not loaded")
        samples, rate = decode_request(payload, self.settings.stt_max_seconds)
        duration_ms = round(1000 * len(samples) / rate)
        if not len(samples):  # nothing to hear: no slot needed
            done = Transcript([], -1, 0.0, 0)
        else:
            pcm = await asyncio.to_thread(_resample, samples, rate, engine.sample_rate)
            try:
                done = await engine.transcribe(pcm)
            except Busy as exc:
                raise ServerNotReady(str(exc)) from None
        lm = checkpoint.lm
        words = words_from_tokens(
            done.tokens,
            checkpoint.tokenizer,
            pad_id=lm.text_padding_token_id,
            end_of_pad_id=lm.end_of_text_padding_id,
            frame_ms=engine.frame_ms,
            offset_ms=1000 * (checkpoint.silence_prefix_s + checkpoint.audio_delay_s),
            duration_ms=duration_ms,
        )
        answer: dict[str, Any] = {
            "text": " ".join(w.word for w in words),
            "words": [w.as_json() for w in words],
            "language": self.settings.stt_language,
            "duration_ms": duration_ms,
            "model": self.model_info,
            "stream": {
                "slot": done.slot if done.steps else None,
                "queued_ms": round(1000 * done.queued_s),
                "steps": done.steps,
            },
        }
        if payload.get("tokens") is True:
            answer["tokens"] = done.tokens
        return answer
