"""The vision function in a harness, with the vlm predictor in-process on a tiny LLaVA
model and blobs in a temporary directory."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"  # nothing is ever downloaded
os.environ["TRANSFORMERS_OFFLINE"] = "1"


@pytest.fixture(scope="module")
def predictor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    import torch

    from models.vlm.predictor import VlmModel
    from models.vlm.settings import VlmSettings
    from tests.models.vlm.tiny import SHORT, tiny_llava

    folder = tiny_llava(tmp_path_factory.mktemp("vlm-llava"))
    before = torch._dynamo.config.disable
    torch._dynamo.config.disable = True  # no torch.compile of outlines' kernel in tests
    model = VlmModel("vlm", VlmSettings(vlm_model_dir=str(folder), vlm_max_side=96, **SHORT))
    model.load()
    yield model
    torch._dynamo.config.disable = before


@pytest.fixture
async def harness(predictor: Any, tmp_path: Path) -> AsyncIterator[Any]:
    from functions.vision.handler import handle, open_vision
    from functions.vision.settings import VisionSettings
    from loom.runtime.model_client import LocalModelClient
    from loom.store import LocalBlobStore
    from loom.testing import FunctionHarness

    settings = VisionSettings(vision_max_side=64, vision_max_pixels=1_000_000)
    async with open_vision(settings, blobs=LocalBlobStore(tmp_path / "blobs")) as vision:
        yield FunctionHarness(handle, settings=settings, state=vision,
                              models={"vlm": LocalModelClient("vlm", predictor)})  # fmt: skip
