"""The vlm predictor, loaded once per module from a tiny LLaVA directory."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"  # nothing is ever downloaded
os.environ["TRANSFORMERS_OFFLINE"] = "1"


@pytest.fixture(scope="module")
def no_compile() -> Iterator[None]:
    """outlines compiles its token-masking kernel with torch.compile on first use: seconds
    of CPU that tests need not spend (the kernel's eager code does the same)."""
    import torch

    before = torch._dynamo.config.disable
    torch._dynamo.config.disable = True
    yield
    torch._dynamo.config.disable = before


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.models.vlm.tiny import tiny_llava

    return tiny_llava(tmp_path_factory.mktemp("vlm-llava"))


@pytest.fixture(scope="module")
def predictor(model_dir: Path, no_compile: None) -> Any:
    from models.vlm.predictor import VlmModel
    from models.vlm.settings import VlmSettings
    from tests.models.vlm.tiny import SHORT

    settings = VlmSettings(vlm_model_dir=str(model_dir), vlm_temperature=1.0, vlm_max_side=48,
                           vlm_max_batch=4, **SHORT)  # fmt: skip
    model = VlmModel("vlm", settings)
    model.load()
    return model
