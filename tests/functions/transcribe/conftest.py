"""The transcribe function in a harness: blobs in a temporary directory, the stt model
in-process (a toy checkpoint of the real architecture) or a stand-in that says what it
is told."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.models.conftest import stt_checkpoint  # noqa: F401 - the toy checkpoint


@pytest.fixture
def stt_client(stt_checkpoint: Path) -> Iterator[Any]:  # noqa: F811
    """The stt predictor (4 slots) behind the in-process model client."""
    from loom.runtime.model_client import LocalModelClient
    from tests.models.stt.tiny import loaded

    with loaded(stt_checkpoint) as make:
        yield LocalModelClient("stt", make(stt_max_streams=4))
