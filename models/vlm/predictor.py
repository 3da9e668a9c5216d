"""The vlm model server: one image in, its analysis out, in the catalog's own shape.

Request (one JSON document, see ``models/base.py``)::

    {"image": "<base64 of a JPEG, PNG or WebP>", "prompt": "optional instruction"}

Answer::

    {"analysis": {"caption": "...", "ocr_text": "...", "objects": [{"label": "..."}],
                  "scene": "..."},
     "model": {"name": "openbmb/MiniCPM-V-4.6"},
     "image": {"width": 1344, "height": 1008},
     "timings": {"decode_ms": 12, "queue_ms": 0, "generate_ms": 2310, "total_ms": 2324},
     "batch_size": 3}

``analysis`` is what outlines forced the model to write: the part of
``media.image.analysis.minicpm_results`` a model can fill (:mod:`models.vlm.schema`), so
it is schema-valid whatever the weights. ``image`` is the size the model saw (upright,
scaled down to ``LOOM_VLM_MAX_SIDE``). Concurrent requests are decoded together, up to
``LOOM_VLM_MAX_BATCH`` per ``generate`` call (``batch_size``: how many shared it).
An image that is not base64, too large or not decodable, or a prompt that is not text,
is refused (400).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator
from kserve.errors import InvalidInput
from PIL import Image

from loom.logging import get_logger
from loom.runtime.batcher import Batcher
from loom.runtime.models import model
from loom.settings import load_settings
from models.base import JsonModel
from models.images import UnreadableImage, decode, image_bytes
from models.vlm.engine import Engine, Request
from models.vlm.schema import describe_fields, fillable_schema
from models.vlm.settings import DEFAULT_STORAGE_URI, VlmSettings

__all__ = ["VlmModel", "default_instruction"]

log = get_logger("loom.models.vlm")


def default_instruction(schema: dict[str, Any]) -> str:
    """What the model is asked when a request brings no prompt of its own."""
    return (
        "Look at this image (a photo or a screenshot) and describe it as one JSON object "
        "with these fields:\n"
        f"{describe_fields(schema)}\n"
        'Use "" or [] where there is nothing to report.'
    )


@dataclass(frozen=True)
class _Generated:
    text: str
    batch_size: int
    seconds: float


@model(
    name="vlm",
    storage_uri_env="LOOM_VLM_STORAGE_URI",
    default_storage_uri=DEFAULT_STORAGE_URI,
    gpu=True,
    memory="24Gi",  # weights (~3 GiB), outlines_core's index (~7 GiB for 250k tokens), torch
)
class VlmModel(JsonModel):
    """Image analysis by a vision-language model, its JSON forced by outlines."""

    def __init__(self, name: str, settings: VlmSettings | None = None) -> None:
        super().__init__(name)
        self._given = settings
        self.settings: VlmSettings | None = None
        self.engine: Engine | None = None
        self.schema: dict[str, Any] = {}
        self.instruction = ""
        self.prompt = ""  # the chat template's text for the default instruction
        self.made_by: dict[str, str] = {}
        self.batcher: Batcher[Request, _Generated] | None = None
        self._validator: Draft202012Validator | None = None

    def load(self) -> bool:
        settings = self._given or load_settings(VlmSettings)
        started = time.perf_counter()
        self.schema = fillable_schema(settings)
        self._validator = Draft202012Validator(self.schema)
        self.instruction = default_instruction(self.schema)
        self.engine = Engine.load(settings, self.schema)
        self.prompt = self.engine.prompt(self.instruction)
        self.made_by = _made_by(settings)
        self.settings = settings
        if settings.vlm_warmup:
            self.engine.run([(self.prompt, Image.new("RGB", (64, 64)))], max_new_tokens=4)
        self.batcher = Batcher(self._generate, max_batch=settings.vlm_max_batch)
        log.info("vlm.loaded", model=self.made_by["name"], device=self.engine.device,
                 max_new_tokens=self.engine.max_new_tokens,
                 seconds=round(time.perf_counter() - started, 2))  # fmt: skip
        self.ready = True
        return True

    async def infer(self, payload: dict[str, Any]) -> dict[str, Any]:
        if self.settings is None or self.engine is None or self.batcher is None:
            raise RuntimeError(f"model {self.name!r} is not loaded")
        started = time.perf_counter()
        raw = image_bytes(payload, self.settings.vlm_max_image_bytes, "LOOM_VLM_MAX_IMAGE_BYTES")
        prompt = self._prompt(payload)
        try:
            image = await asyncio.to_thread(decode, raw, max_pixels=self.settings.vlm_max_pixels,
                                            setting="LOOM_VLM_MAX_PIXELS",
                                            max_side=self.settings.vlm_max_side)  # fmt: skip
        except UnreadableImage as exc:
            raise InvalidInput(str(exc)) from None
        decoded = time.perf_counter()
        size = {"width": image.width, "height": image.height}
        made = await self.batcher.submit((prompt, image))
        analysis = self._parse(made.text)
        done = time.perf_counter()
        waited = max(done - decoded - made.seconds, 0.0)
        return {
            "analysis": analysis,
            "model": dict(self.made_by),
            "image": size,
            "timings": {"decode_ms": _ms(decoded - started), "queue_ms": _ms(waited),
                        "generate_ms": _ms(made.seconds), "total_ms": _ms(done - started)},
            "batch_size": made.batch_size,
        }  # fmt: skip

    def _prompt(self, payload: dict[str, Any]) -> str:
        """The chat template's text for the request's prompt, or for the default one."""
        assert self.settings is not None
        assert self.engine is not None
        prompt = payload.get("prompt")
        if prompt is None:
            return self.prompt
        if not isinstance(prompt, str) or not prompt.strip():
            raise InvalidInput("'prompt' must be non-empty text when given")
        if len(prompt) > self.settings.vlm_max_prompt_chars:
            raise InvalidInput(
                f"the prompt has {len(prompt)} characters, more than "
                f"{self.settings.vlm_max_prompt_chars} (LOOM_VLM_MAX_PROMPT_CHARS)"
            )
        marked = [t for t in self.engine.special_tokens if t in prompt]
        if marked:
            raise InvalidInput(f"the prompt holds the model's special token(s) {marked}")
        fields = describe_fields(self.schema)
        return self.engine.prompt(f"{prompt.strip()}\nAnswer with one JSON object:\n{fields}")

    def _generate(self, batch: Sequence[Request]) -> list[_Generated]:
        assert self.engine is not None
        started = time.perf_counter()
        texts = self.engine.run(batch)
        seconds = time.perf_counter() - started
        return [_Generated(text, len(batch), seconds) for text in texts]

    def _parse(self, text: str) -> dict[str, Any]:
        """The model's JSON, checked: outlines guarantees it, a failure here is a bug."""
        assert self._validator is not None
        try:
            analysis = json.loads(text)
        except ValueError:
            raise RuntimeError(f"model {self.name!r} wrote no JSON: {text[:200]!r}") from None
        problems = [e.message for e in self._validator.iter_errors(analysis)]
        if problems:
            raise RuntimeError(f"model {self.name!r} broke its schema: {problems[:3]}")
        result: dict[str, Any] = analysis
        return result


def _made_by(settings: VlmSettings) -> dict[str, str]:
    name = settings.vlm_model_name
    if not name:
        uri = settings.vlm_storage_uri
        name = uri.removeprefix("hf://") if uri.startswith("hf://") else uri.rstrip("/")
        name = name if uri.startswith("hf://") else name.rsplit("/", 1)[-1]
    made_by = {"name": name[:200] or "vlm"}
    if settings.vlm_model_version:
        made_by["version"] = settings.vlm_model_version
    return made_by


def _ms(seconds: float) -> int:
    return max(round(seconds * 1000), 0)
