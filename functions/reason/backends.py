"""Where the answers come from: one small interface, two backends.

``await backend.generate(prompt, schema) -> dict``: chat messages in, the model's answer
out as a JSON object that the backend constrained to ``schema``.

- :class:`OllamaBackend` (production): an Ollama server's ``/api/chat`` with the schema
  as ``format`` (Ollama's structured outputs, a grammar over the model's tokens), through
  the ``ollama`` client. A server that is down, busy, failing (5xx), slow past
  ``LOOM_REASON_TIMEOUT_SECONDS`` or without the model (404: not pulled yet) is
  :class:`ModelUnavailable`, retried by the runtime; any other 4xx is
  :class:`ModelRefused`, a dead letter. Without the ``ollama`` package (the models
  extra) every call is ModelUnavailable saying so, as for a model server that cannot run.
- :class:`~functions.reason.local.TransformersBackend` (``LOOM_REASON_BACKEND=
  transformers``): a causal LM in this process, constrained by outlines.

An answer that is no JSON object (a model ignoring the format, an answer cut at
``LOOM_REASON_MAX_TOKENS``) is :class:`BadAnswer`; :func:`ask` checks answers against
the schema, asks once more with the reason, and lets a second bad answer go to the
dead letters.
"""

from __future__ import annotations

import asyncio
import json
import zlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Protocol

import httpx
from jsonschema import Draft202012Validator

from functions.reason.prompts import Message
from functions.reason.settings import ReasonSettings
from loom.logging import get_logger
from loom.runtime.model_client import ModelRefused, ModelUnavailable

if TYPE_CHECKING:
    import ollama

__all__ = [
    "BadAnswer",
    "OllamaBackend",
    "ReasoningBackend",
    "ask",
    "open_backend",
    "parse_answer",
    "seed_of",
]

log = get_logger("loom.function.reason")
_BUSY = {408, 429}
_SHOWN = 2000  # characters of a bad answer shown back to the model


class ReasoningBackend(Protocol):
    name: str  # the model, as results name it

    async def generate(
        self, prompt: Sequence[Message], schema: dict[str, Any]
    ) -> dict[str, Any]: ...  # fmt: skip


class BadAnswer(ModelRefused):
    """The model's answer is no JSON object following the schema."""

    def __init__(self, reason: str, answer: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.answer = answer


def parse_answer(text: str) -> dict[str, Any]:
    """The JSON object ``text`` holds, or BadAnswer."""
    try:
        answer = json.loads(text)
    except ValueError as exc:
        raise BadAnswer(f"the answer is not JSON ({exc})", text) from None
    if not isinstance(answer, dict):
        raise BadAnswer(f"the answer is a JSON {type(answer).__name__}, not an object", text)
    return answer


def seed_of(prompt: Sequence[Message]) -> int:
    """A sampling seed from the prompt: the same input asked again gets the same answer."""
    return zlib.crc32(json.dumps(list(prompt), sort_keys=True).encode()) & 0x7FFF_FFFF


async def ask(
    backend: ReasoningBackend,
    prompt: Sequence[Message],
    schema: dict[str, Any],
    validator: Draft202012Validator,
) -> dict[str, Any]:
    """The model's answer to ``prompt``, valid against ``schema``; one bad answer is
    followed by a second request that says what was wrong, a second one is BadAnswer."""
    try:
        return _checked(await backend.generate(prompt, schema), validator)
    except BadAnswer as first:
        log.warning("reason.bad_answer", model=backend.name, reason=first.reason)
        again = [*prompt, {"role": "assistant", "content": first.answer[:_SHOWN]},
                 {"role": "user", "content": f"That answer cannot be used: {first.reason}. "
                  "Answer again with one JSON object that follows the fields above."}]  # fmt: skip
        try:
            return _checked(await backend.generate(again, schema), validator)
        except BadAnswer as second:
            raise BadAnswer(
                f"model {backend.name!r} answered twice without following the schema: "
                f"{second.reason}",
                second.answer,
            ) from None


def _checked(answer: dict[str, Any], validator: Draft202012Validator) -> dict[str, Any]:
    errors = sorted(validator.iter_errors(answer), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        where = "/" + "/".join(map(str, errors[0].absolute_path))
        raise BadAnswer(f"'{where}': {errors[0].message}", json.dumps(answer)[:_SHOWN])
    return answer


class OllamaBackend:
    """An Ollama server, through the ``ollama`` client's AsyncClient."""

    def __init__(self, client: ollama.AsyncClient, config: ReasonSettings) -> None:
        self.name = config.reason_model
        self._client = client
        self._config = config
        self._url = config.reason_ollama_url

    async def generate(self, prompt: Sequence[Message], schema: dict[str, Any]) -> dict[str, Any]:
        import ollama

        config = self._config
        options = {"num_ctx": config.reason_context_tokens, "num_predict": config.reason_max_tokens,
                   "temperature": config.reason_temperature, "seed": seed_of(prompt)}  # fmt: skip
        try:
            response = await self._client.chat(model=self.name, messages=list(prompt),
                                               format=schema, stream=False,
                                               options=options)  # fmt: skip
        except ConnectionError as exc:  # what the client makes of a refused connection
            raise ModelUnavailable(f"Ollama at {self._url} is unreachable: {exc}") from None
        except httpx.TimeoutException as exc:
            raise ModelUnavailable(
                f"Ollama at {self._url} did not answer in {config.reason_timeout_seconds:.0f} s "
                f"({type(exc).__name__})"
            ) from None
        except httpx.TransportError as exc:
            raise ModelUnavailable(f"Ollama at {self._url} failed: {exc!r}") from None
        except ollama.ResponseError as exc:
            raise self._error(exc) from None
        content = response.message.content or ""
        if response.done_reason == "length":
            raise BadAnswer(f"the answer was cut at {config.reason_max_tokens} tokens "
                            "(LOOM_REASON_MAX_TOKENS)", content)  # fmt: skip
        return parse_answer(content)

    def _error(self, exc: ollama.ResponseError) -> Exception:
        status, said = exc.status_code, str(exc.error)[:300]
        if status == 404:  # the model is missing, not the event's fault: wait for it
            return ModelUnavailable(f"Ollama at {self._url} has no model {self.name!r} ({said}): "
                                    f"pull it with `ollama pull {self.name}`")  # fmt: skip
        if 400 <= status < 500 and status not in _BUSY:
            return ModelRefused(f"Ollama refused the request ({status}): {said}")
        return ModelUnavailable(f"Ollama at {self._url} answered {status}: {said}")


class _Missing:
    """A backend that cannot run here: every call says why."""

    def __init__(self, name: str, why: str) -> None:
        self.name, self.why = name, why

    async def generate(self, prompt: Sequence[Message], schema: dict[str, Any]) -> dict[str, Any]:
        raise ModelUnavailable(self.why)


@asynccontextmanager
async def open_backend(config: ReasonSettings) -> AsyncIterator[ReasoningBackend]:
    """The backend ``config`` names, open for as long as the context lasts."""
    if config.reason_backend == "transformers":
        from functions.reason.local import load_transformers

        yield await asyncio.to_thread(load_transformers, config)
        return
    try:
        import ollama
    except ImportError as exc:  # as for model servers: say why on every call, others go on
        why = f"the ollama backend needs the ollama client (uv sync --extra models): {exc}"
        log.warning("reason.backend_unavailable", reason=why)
        yield _Missing(config.reason_model, why)
        return
    timeout = httpx.Timeout(config.reason_timeout_seconds, connect=10.0)
    client = ollama.AsyncClient(host=config.reason_ollama_url, timeout=timeout)
    try:
        yield OllamaBackend(client, config)
    finally:
        await client.close()  # type: ignore[no-untyped-call]
