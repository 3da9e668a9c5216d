"""The model, its processor and the outlines generator that holds it to the schema.

Loading reads a local directory only (``local_files_only``, ``HF_HUB_OFFLINE``): KServe's
storage initializer has put the weights there. Generation is blocking (run it in a
worker thread) and takes a batch: several (prompt, image) pairs padded into one
``generate`` call, each with its own copy of the schema's state machine.

What makes every answer schema-valid and bounded, beyond outlines' token mask:

- generation stops only at the tokenizer's end-of-sequence token, the one the mask
  allows once the JSON is complete (a chat model's other stop tokens, such as
  ``<|im_end|>``, would otherwise end it midway);
- special tokens (image placeholders, chat markers) and tokens that spell nothing are
  suppressed: the first would vanish from the decoded text (an empty label), the second
  could be repeated forever without moving the JSON on;
- ``max_new_tokens`` is the longest JSON the schema allows, in characters, plus one:
  every other token adds at least one character, so the limit is never what ends it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from loom.errors import ConfigError
from models.vlm.schema import max_chars
from models.vlm.settings import VlmSettings

__all__ = ["Engine", "Request"]

Request = tuple[str, Image.Image]  # the rendered prompt, the image


@dataclass
class Engine:
    """A loaded model ready to answer batches of requests with schema-valid JSON text."""

    model: Any
    processor: Any
    generator: Any
    device: str
    max_new_tokens: int
    generate_kwargs: dict[str, Any] = field(default_factory=dict)
    template_kwargs: dict[str, Any] = field(default_factory=dict)
    special_tokens: tuple[str, ...] = ()

    @classmethod
    def load(cls, settings: VlmSettings, schema: dict[str, Any]) -> Engine:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import outlines
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        where = Path(settings.vlm_model_dir)
        if not (where / "config.json").is_file():
            raise ConfigError(
                f"LOOM_VLM_MODEL_DIR {where} holds no model (config.json); the server reads "
                f"a local directory only and never downloads (LOOM_VLM_STORAGE_URI is "
                f"{settings.vlm_storage_uri})"
            )
        device = settings.vlm_device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype_name = settings.vlm_dtype
        if dtype_name == "auto":
            dtype_name = "bfloat16" if device == "cuda" else "float32"
        trust = settings.vlm_trust_remote_code
        try:
            model: Any = AutoModelForImageTextToText.from_pretrained(
                where, dtype=getattr(torch, dtype_name), trust_remote_code=trust,
                local_files_only=True,
            )  # fmt: skip
            processor: Any = AutoProcessor.from_pretrained(  # type: ignore[no-untyped-call]
                where, trust_remote_code=trust, local_files_only=True
            )
        except (ValueError, ImportError, OSError) as exc:
            hint = "" if trust else " (code shipped with weights needs LOOM_VLM_TRUST_REMOTE_CODE)"
            raise ConfigError(f"cannot load the model in {where}: {exc}{hint}") from exc
        model.to(device).eval()
        template = getattr(processor, "chat_template", None)
        if not template:
            raise ConfigError(f"the processor in {where} has no chat template")
        if isinstance(template, dict):  # several named templates: the default one
            template = template.get("default", next(iter(template.values())))
        wrapped = outlines.from_transformers(model, processor)
        generator = outlines.Generator(
            wrapped,
            _forced(schema, settings.vlm_backend),
            backend=settings.vlm_backend,
        )
        tokenizer = processor.tokenizer
        eos = tokenizer.eos_token_id
        blank = [
            i for token, i in tokenizer.get_vocab().items()
            if i != eos and not wrapped.tokenizer.convert_token_to_string(token)
        ]  # fmt: skip
        suppressed = sorted({*(i for i in tokenizer.all_special_ids if i != eos), *blank})
        kwargs: dict[str, Any] = {"eos_token_id": eos, "pad_token_id": tokenizer.pad_token_id}
        if suppressed:
            kwargs["suppress_tokens"] = suppressed
        if settings.vlm_temperature > 0:
            kwargs.update(do_sample=True, temperature=settings.vlm_temperature)
        else:
            kwargs.update(do_sample=False)
        used = {k: v for k, v in settings.vlm_chat_template_kwargs.items()
                if re.search(rf"\b{re.escape(k)}\b", template)}  # fmt: skip
        return cls(
            model=model,
            processor=processor,
            generator=generator,
            device=device,
            max_new_tokens=max_chars(schema) + 1,
            generate_kwargs=kwargs,
            template_kwargs=used,
            special_tokens=tuple(t for t in tokenizer.all_special_tokens if t),
        )

    def prompt(self, instruction: str) -> str:
        """The chat template's text for one user turn: the image, then ``instruction``."""
        messages = [{"role": "user", "content": [
            {"type": "image"}, {"type": "text", "text": instruction},
        ]}]  # fmt: skip
        text: str = self.processor.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True, **self.template_kwargs
        )
        return text

    def run(self, batch: Sequence[Request], max_new_tokens: int | None = None) -> list[str]:
        """The JSON text for each (prompt, image), generated together."""
        import outlines
        import torch

        inputs = []
        for text, image in batch:
            image.format = image.format or "BMP"  # outlines wants one; BMP is the cheapest to write
            inputs.append([text, outlines.inputs.Image(image)])
        with torch.inference_mode():
            texts = self.generator.batch(
                inputs, max_new_tokens=max_new_tokens or self.max_new_tokens,
                **self.generate_kwargs,
            )  # fmt: skip
        return [str(t) for t in texts]


def _forced(schema: dict[str, Any], backend: str) -> Any:
    """``schema`` for outlines: no whitespace between tokens, and (llguidance) no
    ``\\uXXXX`` escapes, so that every character costs at most two (see ``max_chars``)."""
    import outlines

    if backend == "llguidance":  # takes no whitespace pattern; its options ride in the schema
        options = {"whitespace_flexible": False, "json_allowed_escapes": '"\\bfnrt'}
        return outlines.types.JsonSchema({**schema, "x-guidance": options})
    return outlines.types.JsonSchema(schema, whitespace_pattern="")
