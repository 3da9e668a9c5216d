"""What ``ctx.model(name)`` gives a function: a client of a model server.

Every Loom predictor speaks one JSON document each way over KServe's V2 protocol (one
``BYTES`` input ``request``, one output ``response``; see ``models/base.py``), so one
client fits all of them: ``await ctx.model("stt").infer({...}) -> {...}``.

- :class:`HttpModelClient`: the InferenceService over HTTP (the cluster, or any URL in
  ``LOOM_MODEL_URLS``). A server scaled to zero, starting or busy answers 502/503/504,
  408 or 429 or refuses the connection: the client keeps trying (honouring
  ``Retry-After``) for ``LOOM_MODEL_WAKE_SECONDS`` before it gives up with
  :class:`ModelUnavailable`, which the runtime retries like any dependency that is down.
  Another 4xx is the model refusing this input: :class:`ModelRefused`, a dead letter. A
  500, a malformed answer or no answer in time is :class:`ModelFailed`: retried a
  bounded number of times, then dead-lettered, so one input the model always fails on
  cannot hold up a device's ordered stream for ever.
- :class:`LocalModelClient`: the same predictor class in this process (``loom dev`` and
  tests), through KServe's own preprocess → predict → postprocess.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, Protocol

import httpx
from pydantic import Field

from loom.errors import LoomError
from loom.logging import get_logger
from loom.runtime.invoke import HandlerFailed, PoisonEvent, Unavailable
from loom.settings import LoomSettings, settings_for

__all__ = [
    "HttpModelClient",
    "LocalModelClient",
    "ModelClient",
    "ModelFailed",
    "ModelRefused",
    "ModelSettings",
    "ModelUnavailable",
    "open_model_clients",
    "v2_decode",
    "v2_encode",
]

log = get_logger("loom.models")
REQUEST, RESPONSE = "request", "response"
# A server starting, scaled to zero or busy: wait for it (Retry-After honoured).
_WAKING = {408, 429, 502, 503, 504}


class ModelUnavailable(Unavailable):
    """The model server cannot be reached or is still waking up: the event waits."""


class ModelFailed(HandlerFailed):
    """The model server failed on this input (a 500, a malformed answer, no answer in
    time): tried again a bounded number of times, then dead-lettered."""


class ModelRefused(PoisonEvent):
    """The model server refused this input (a 4xx): retrying it cannot help."""


class ModelSettings(LoomSettings):
    """Where the model servers are, and how long a client waits for one to wake up."""

    model_urls: dict[str, str] = Field(
        default_factory=dict,
        description='Model servers by name, as JSON: {"stt": "http://stt-predictor.loom.svc"}. '
        "A model not named here runs in-process (loom dev, tests; needs the models extra).",
    )
    model_timeout_seconds: float = Field(
        default=120.0, gt=0, le=3600, description="How long one inference may take."
    )
    model_wake_seconds: float = Field(
        default=300.0, ge=0, le=3600,
        description="How long to keep trying a server that is scaled to zero or starting.",
    )  # fmt: skip


class ModelClient(Protocol):
    async def infer(self, payload: dict[str, Any]) -> dict[str, Any]: ...


def v2_encode(name: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The V2 REST body of ``payload`` for model ``name``."""
    text = json.dumps(payload, separators=(",", ":"))
    return {"id": name, "inputs": [{"name": REQUEST, "shape": [1], "datatype": "BYTES",
                                    "data": [text]}]}  # fmt: skip


def v2_decode(body: dict[str, Any]) -> dict[str, Any]:
    """The JSON document of a V2 REST answer."""
    for output in body.get("outputs") or []:
        if output.get("name") == RESPONSE and output.get("data"):
            document = json.loads(output["data"][0])
            if isinstance(document, dict):
                return document
    raise ModelFailed(f"the model's answer has no {RESPONSE!r} output: {str(body)[:200]}")


class HttpModelClient:
    """A model server over KServe's V2 REST protocol."""

    def __init__(
        self,
        name: str,
        url: str,
        *,
        timeout: float = 120.0,
        wake_seconds: float = 300.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.name = name
        self.url = f"{url.rstrip('/')}/v2/models/{name}/infer"
        self._wake = wake_seconds
        self._client = client or httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=10))

    async def aclose(self) -> None:
        await self._client.aclose()

    async def infer(self, payload: dict[str, Any]) -> dict[str, Any]:
        body = v2_encode(self.name, payload)
        deadline = time.monotonic() + self._wake
        delay = 0.5
        while True:
            wait = delay
            try:
                answer = await self._client.post(self.url, json=body)
                if answer.status_code not in _WAKING:
                    break
                problem = f"answered {answer.status_code}"
                wait = max(delay, _retry_after(answer))
            except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ConnectTimeout) as exc:
                problem = f"unreachable ({type(exc).__name__})"
            except httpx.TimeoutException as exc:
                raise ModelFailed(f"model {self.name!r} took too long: {exc}") from exc
            if time.monotonic() + wait > deadline:
                raise ModelUnavailable(
                    f"model {self.name!r} at {self.url} {problem} for {self._wake:.0f} s"
                )
            log.info("model.waiting", model=self.name, problem=problem, retry_in=wait)
            await asyncio.sleep(wait * random.uniform(0.8, 1.2))
            delay = min(delay * 2, 15.0)
        if 400 <= answer.status_code < 500:
            raise ModelRefused(
                f"model {self.name!r} refused the input ({answer.status_code}): {answer.text[:300]}"
            )
        if answer.status_code >= 300:
            raise ModelFailed(
                f"model {self.name!r} answered {answer.status_code}: {answer.text[:300]}"
            )
        try:
            document = answer.json()
        except ValueError as exc:
            raise ModelFailed(f"model {self.name!r} answered with no JSON: {exc}") from None
        return v2_decode(document)


def _retry_after(answer: httpx.Response) -> float:
    """A server's ``Retry-After`` in seconds (at most a minute), else 0."""
    try:
        return min(60.0, max(0.0, float(answer.headers.get("retry-after", "0"))))
    except ValueError:
        return 0.0


class LocalModelClient:
    """A predictor in this process (anything with ``async infer_json(payload)``)."""

    def __init__(self, name: str, predictor: Any) -> None:
        self.name = name
        self.predictor = predictor

    async def aclose(self) -> None:
        """Stops the predictor (KServe's ``stop``, as the model server does on SIGTERM):
        its threads and its batch loop, on this event loop, before the loop closes."""
        stop = getattr(self.predictor, "stop", None)
        if stop is not None:
            stop()
            await asyncio.sleep(0)  # what it cancelled ends here, not as a destroyed task

    async def infer(self, payload: dict[str, Any]) -> dict[str, Any]:
        try:
            result: dict[str, Any] = await self.predictor.infer_json(payload)
        except LoomError:
            raise
        except (ValueError, TypeError) as exc:  # what KServe's InvalidInput is made of
            if type(exc).__name__ == "InvalidInput":
                raise ModelRefused(f"model {self.name!r} refused the input: {exc}") from exc
            raise
        return result


class _Missing:
    """A model that cannot run here: every call says why (other functions go on)."""

    def __init__(self, name: str, why: str) -> None:
        self.name, self.why = name, why

    async def infer(self, payload: dict[str, Any]) -> dict[str, Any]:
        raise ModelUnavailable(self.why)


@asynccontextmanager
async def open_model_clients(
    names: Iterable[str], settings: LoomSettings
) -> AsyncIterator[dict[str, ModelClient]]:
    """A client per model ``names``: over HTTP where ``LOOM_MODEL_URLS`` names a server,
    else the registered predictor loaded in this process (once per host). Leaving closes
    the HTTP clients and stops the predictors loaded here."""
    config = settings_for(ModelSettings, settings)
    clients: dict[str, ModelClient] = {}
    async with AsyncExitStack() as resources:
        for name in names:
            url = config.model_urls.get(name)
            if url:
                http = HttpModelClient(name, url, timeout=config.model_timeout_seconds,
                                       wake_seconds=config.model_wake_seconds)  # fmt: skip
                resources.push_async_callback(http.aclose)
                clients[name] = http
            else:
                local = await _local(name)
                if isinstance(local, LocalModelClient):
                    resources.push_async_callback(local.aclose)
                clients[name] = local
        yield clients


async def _local(name: str) -> ModelClient:
    try:
        from loom.runtime.models import discover_models

        spec = discover_models().models.get(name)
    except ImportError as exc:
        why = (f"model {name!r} runs in-process only with the models extra installed "
               f"(uv sync --extra models), or set LOOM_MODEL_URLS: {exc}")  # fmt: skip
        log.warning("model.unavailable", model=name, reason=why)
        return _Missing(name, why)
    if spec is None:
        return _Missing(name, f"no model {name!r} is registered in models/")
    predictor = spec.predictor(name)
    started = time.perf_counter()
    try:
        await asyncio.to_thread(predictor.load)
    except Exception as exc:  # noqa: BLE001 — the host goes on; this model's events wait
        why = (f"model {name!r} could not load here ({type(exc).__name__}: {exc}); give it "
               "its weights (see its settings) or a server in LOOM_MODEL_URLS")  # fmt: skip
        log.warning("model.unavailable", model=name, reason=why)
        return _Missing(name, why)
    log.info("model.loaded", model=name, seconds=round(time.perf_counter() - started, 2))
    return LocalModelClient(name, predictor)
