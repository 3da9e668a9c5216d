"""The transcribe function in a harness: blobs in a temporary directory, the stt model
in-process (a toy checkpoint of the real architecture) or a stand-in that says what it
is told."""

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
    pytest.importorskip("models.base", reason="needs the models extra (kserve)")
    from tests.models.stt.tiny import write_checkpoint

    return write_checkpoint(tmp_path_factory.mktemp("stt-checkpoint"))


@pytest.fixture
def stt_client(stt_checkpoint: Path) -> Iterator[Any]:
    """The stt predictor (4 slots) behind the in-process model client."""
    from loom.runtime.model_client import LocalModelClient
    from tests.models.stt.tiny import loaded

    with loaded(stt_checkpoint) as make:
        yield LocalModelClient("stt", make(stt_max_streams=4))
