"""Loaded stt predictors for the stt tests (the toy checkpoint is ``stt_checkpoint`` in
``tests/models/conftest.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def make_stt(stt_checkpoint: Path) -> Iterator[Any]:
    """Loads SttModels from the toy checkpoint through the real loading code."""
    from tests.models.stt.tiny import loaded

    with loaded(stt_checkpoint) as make:
        yield make
