"""A toy Kyutai STT checkpoint (real architecture, random weights) for the stt tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("NO_TORCH_COMPILE", "1")  # moshi's torch.compile: no gain at toy size


@pytest.fixture(scope="session")
def stt_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("moshi", reason="needs the models extra (moshi)")
    from tests.models.stt.tiny import write_checkpoint

    return write_checkpoint(tmp_path_factory.mktemp("stt-checkpoint"))


@pytest.fixture
def make_stt(stt_checkpoint: Path) -> Iterator[Any]:
    """Loads SttModels from the toy checkpoint through the real loading code."""
    from tests.models.stt.tiny import loaded

    with loaded(stt_checkpoint) as make:
        yield make
