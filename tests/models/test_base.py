"""The JSON-over-V2 shape every predictor shares, in-process and through a client."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("models.base", reason="needs the models extra (kserve)")

from kserve.errors import InvalidInput

from loom.runtime.model_client import LocalModelClient, ModelRefused, v2_decode, v2_encode
from models.base import JsonModel


class Echo(JsonModel):
    def load(self) -> bool:
        self.ready = True
        return True

    async def infer(self, payload: dict[str, Any]) -> dict[str, Any]:
        if "boom" in payload:
            raise InvalidInput("no boom, please")
        return {"echo": payload, "model": self.name}


async def test_a_json_document_goes_through_kserves_hooks_and_back() -> None:
    model = Echo("echo")
    model.load()
    assert await model.infer_json({"a": 1, "text": "grüße"}) == {
        "echo": {"a": 1, "text": "grüße"},
        "model": "echo",
    }


async def test_the_local_client_turns_invalid_input_into_a_dead_letter() -> None:
    model = Echo("echo")
    model.load()
    client = LocalModelClient("echo", model)
    assert (await client.infer({"x": [1, 2]}))["echo"] == {"x": [1, 2]}
    with pytest.raises(ModelRefused, match="no boom"):
        await client.infer({"boom": True})


async def test_v2_bodies_are_what_the_server_reads() -> None:
    model = Echo("echo")
    model.load()
    body = v2_encode("echo", {"q": "hi"})
    assert await model.preprocess(body) == {"q": "hi"}
    answer = await model.postprocess({"ok": True})
    rest = answer.to_rest()
    assert v2_decode(rest if isinstance(rest, dict) else rest[0]) == {"ok": True}
