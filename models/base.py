"""The shape every Loom predictor shares: JSON in, JSON out, over KServe's V2 protocol.

A request is one V2 ``BYTES`` input named ``request`` holding a JSON document (shape
``[1]``); the answer one ``BYTES`` output named ``response``. That keeps each model's
own payload (audio and its sample rate, an image and a schema, a prompt) a plain,
documented JSON object, while the server stays a standard ``kserve.ModelServer`` any V2
client can call. Subclasses implement :meth:`JsonModel.load` and
:meth:`JsonModel.infer`; batching across concurrent requests belongs in ``infer``
(many requests await it at once on the server's event loop).

The same class runs in-process in ``loom dev`` and in tests: :meth:`infer_json` goes
through KServe's own ``__call__`` (preprocess → predict → postprocess) exactly as the
server does, without HTTP.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from kserve import InferInput, InferOutput, InferRequest, InferResponse, Model
from kserve.errors import InvalidInput

__all__ = ["REQUEST", "RESPONSE", "JsonModel"]

REQUEST, RESPONSE = "request", "response"


class JsonModel(Model):  # type: ignore[misc]
    """A KServe model whose payload is one JSON document each way."""

    async def infer(self, payload: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    # ── KServe's hooks ────────────────────────────────────────────────────
    async def preprocess(
        self, payload: InferRequest | dict[str, Any], headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        if isinstance(payload, InferRequest):
            found = [i for i in payload.inputs if i.name == REQUEST]
            if not found:
                raise InvalidInput(f"expected one BYTES input named {REQUEST!r}")
            raw = found[0].data[0] if found[0].data else b""
        elif isinstance(payload, dict) and isinstance(payload.get("inputs"), list):
            raw = payload["inputs"][0]["data"][0]  # V2 JSON given as a dict
        else:
            raise InvalidInput("expected a V2 inference request")
        try:
            document = json.loads(raw)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"input {REQUEST!r} is not a JSON document: {exc}") from None
        if not isinstance(document, dict):
            raise InvalidInput(f"input {REQUEST!r} must hold a JSON object")
        return document

    async def predict(
        self, payload: dict[str, Any], headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        return await self.infer(payload)

    async def postprocess(
        self, result: dict[str, Any], headers: dict[str, str] | None = None
    ) -> InferResponse:
        body = json.dumps(result, separators=(",", ":")).encode()
        output = InferOutput(name=RESPONSE, shape=[1], datatype="BYTES", data=[body])
        return InferResponse(response_id=str(uuid.uuid4()), model_name=self.name,
                             infer_outputs=[output])  # fmt: skip

    # ── in-process use (loom dev, tests) ─────────────────────────────────
    async def infer_json(self, payload: dict[str, Any]) -> dict[str, Any]:
        """What a V2 client gets back for ``payload``, through the same hooks."""
        body = json.dumps(payload, separators=(",", ":")).encode()
        request = InferRequest(
            model_name=self.name,
            infer_inputs=[InferInput(name=REQUEST, shape=[1], datatype="BYTES", data=[body])],
        )
        response, _headers = await self(request)
        if not isinstance(response, InferResponse):
            raise TypeError(f"{self.name}: postprocess gave {type(response).__name__}")
        (output,) = [o for o in response.outputs if o.name == RESPONSE]
        raw = output.data[0]
        return dict(json.loads(raw if isinstance(raw, (bytes, str)) else bytes(raw)))
