"""What the model tests share: a toy Kyutai STT checkpoint (real architecture, random
weights), built once per session. Other test packages import the fixture from here."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("NO_TORCH_COMPILE", "1")  # moshi's torch.compile: no gain at toy size


@pytest.fixture(scope="session")
def stt_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("moshi", reason="needs the models extra (moshi)")
    pytest.importorskip("models.base", reason="needs the models extra (kserve)")
    from tests.models.stt.tiny import write_checkpoint

    return write_checkpoint(tmp_path_factory.mktemp("stt-checkpoint"))
