"""The in-process backend: a transformers causal LM whose answers outlines constrains to
the schema (``LOOM_REASON_BACKEND=transformers``, ``LOOM_REASON_MODEL_DIR``).

Any causal LM directory transformers reads (config.json, safetensors weights, a fast
tokenizer) works: Mistral Small 3.2's own, or the tiny random-weight ones of the tests.
Nothing is downloaded. The schema is made finite first (:func:`~functions.reason.schema.
finite`: outlines' regex of a number has no end and no bounds) and whitespace between
JSON tokens is at most one space, so every answer the decoder allows has a known longest
length and the generation ends. One generation runs at a time, in a worker thread (the
event loop stays free); the compiled schema is kept for the next one.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from functions.reason.backends import parse_answer, seed_of
from functions.reason.prompts import Message
from functions.reason.schema import finite
from functions.reason.settings import ReasonSettings
from loom.errors import ConfigError
from loom.runtime.model_client import ModelRefused

__all__ = ["TransformersBackend", "load_transformers"]

WHITESPACE = r"[ ]?"  # between JSON tokens: at most one space


class TransformersBackend:
    """A causal LM and its tokenizer, wrapped by outlines."""

    def __init__(self, model: Any, tokenizer: Any, *, name: str, config: ReasonSettings) -> None:
        import outlines

        self.name = name
        self.model = outlines.from_transformers(model, tokenizer)
        self.tokenizer = tokenizer
        self.context = getattr(model.config, "max_position_embeddings", None)
        self._config = config
        self._generators: dict[str, Any] = {}
        self._lock = threading.Lock()  # one generation at a time; the generators keep state

    async def generate(self, prompt: Sequence[Message], schema: dict[str, Any]) -> dict[str, Any]:
        text = await asyncio.to_thread(self._generate, list(prompt), schema)
        return parse_answer(text)

    def _generate(self, prompt: list[Message], schema: dict[str, Any]) -> str:
        import torch

        with self._lock:
            generator = self._generator(schema)
            model_input, tokens = self._input(prompt)
            most = self._config.reason_max_tokens
            if self.context is not None and tokens + most > self.context:
                raise ModelRefused(
                    f"the prompt's {tokens} tokens and the answer's {most} "
                    f"(LOOM_REASON_MAX_TOKENS) pass model {self.name!r}'s context of "
                    f"{self.context} tokens (LOOM_REASON_DOCUMENT_MAX_CHARS cuts documents)"
                )
            options: dict[str, Any] = {"max_new_tokens": most}
            temperature = self._config.reason_temperature
            if temperature > 0:
                torch.manual_seed(seed_of(prompt))
                options.update(do_sample=True, temperature=temperature)
            else:
                options.update(do_sample=False)
            with torch.inference_mode():
                text = generator(model_input, **options)
        return str(text)

    def _generator(self, schema: dict[str, Any]) -> Any:
        import outlines
        from outlines.types import JsonSchema

        key = json.dumps(schema, sort_keys=True)
        if key not in self._generators:
            output = JsonSchema(finite(schema), whitespace_pattern=WHITESPACE)
            self._generators[key] = outlines.Generator(self.model, output)
        return self._generators[key]

    def _input(self, prompt: list[Message]) -> tuple[Any, int]:
        """What outlines is given (a Chat where the tokenizer has a chat template, else a
        plain text) and how many tokens it makes."""
        from outlines.inputs import Chat

        if getattr(self.tokenizer, "chat_template", None):
            try:
                text = self.tokenizer.apply_chat_template(prompt, tokenize=False,
                                                          add_generation_prompt=True)  # fmt: skip
            except Exception:  # noqa: BLE001 - a template without a system role: fold it in
                prompt = _without_system(prompt)
                text = self.tokenizer.apply_chat_template(prompt, tokenize=False,
                                                          add_generation_prompt=True)  # fmt: skip
            return Chat(prompt), len(self.tokenizer(text)["input_ids"])
        text = "\n\n".join(f"{m['role'].capitalize()}:\n{m['content']}" for m in prompt)
        text += "\n\nAssistant:\n"
        return text, len(self.tokenizer(text)["input_ids"])


def _without_system(prompt: list[Message]) -> list[Message]:
    """The system message put before the first user message's text."""
    system = "\n\n".join(m["content"] for m in prompt if m["role"] == "system")
    rest = [dict(m) for m in prompt if m["role"] != "system"]
    if system and rest:
        rest[0]["content"] = f"{system}\n\n{rest[0]['content']}"
    return rest


def load_transformers(config: ReasonSettings) -> TransformersBackend:
    """The model of LOOM_REASON_MODEL_DIR (blocking: call it off the event loop)."""
    directory = config.reason_model_dir
    if directory is None:
        raise ConfigError("LOOM_REASON_BACKEND=transformers needs LOOM_REASON_MODEL_DIR")
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise ConfigError(
            "LOOM_REASON_BACKEND=transformers needs the models extra (uv sync --extra models): "
            f"{exc}"
        ) from None
    if not (Path(directory) / "config.json").is_file():
        raise ConfigError(f"LOOM_REASON_MODEL_DIR={directory} holds no config.json")
    try:
        tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
        model: Any = AutoModelForCausalLM.from_pretrained(
            directory, dtype="auto", local_files_only=True
        )
    except (OSError, ValueError) as exc:
        raise ConfigError(f"LOOM_REASON_MODEL_DIR={directory} is not a causal LM: {exc}") from None
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = model.to(device).eval()
    return TransformersBackend(model, tokenizer, name=config.model_name, config=config)
