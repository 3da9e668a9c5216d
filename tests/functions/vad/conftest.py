"""The vad function in a harness: Silero on onnxruntime, state in memory, blobs in a
temporary directory."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from functions.vad.handler import Vad, handle, open_vad
from functions.vad.settings import VadSettings
from loom.runtime.event import Event
from loom.runtime.state import MemoryStateStore
from loom.store import LocalBlobStore
from loom.testing import FunctionHarness
from tests.functions.vad.audio import espeak

VAD = "media.audio.vad_filtered"


class Rig:
    """A harness, its state store and blob store, and a way to run many events."""

    def __init__(self, harness: FunctionHarness, vad: Vad, states: MemoryStateStore,
                 blobs: LocalBlobStore) -> None:  # fmt: skip
        self.harness, self.vad, self.states, self.blobs = harness, vad, states, blobs

    async def call(self, event: Event) -> list[Event]:
        return await self.harness.call(event)

    async def run(self, events: list[Event]) -> list[Event]:
        made: list[Event] = []
        for event in events:
            made += await self.harness.call(event)
        return made


MakeRig = Callable[..., Awaitable[Rig]]


@pytest.fixture
async def make_rig(tmp_path: Path) -> AsyncIterator[MakeRig]:
    async with AsyncExitStack() as stack:

        async def make(**settings: Any) -> Rig:
            config = VadSettings(**settings)
            states, blobs = MemoryStateStore(), LocalBlobStore(tmp_path / "blobs")
            vad = await stack.enter_async_context(open_vad(config, states=states, blobs=blobs))
            return Rig(FunctionHarness(handle, settings=config, state=vad), vad, states, blobs)

        yield make


@pytest.fixture
async def rig(make_rig: MakeRig) -> Rig:
    return await make_rig()


@pytest.fixture
def spoken(tmp_path: Path) -> tuple[np.ndarray, int]:
    """Two sentences spoken by espeak-ng (22.05 kHz), int16."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng); the "
                    "speech-like signal tests still run")  # fmt: skip
    return espeak("The quick brown fox jumps over the lazy dog.", tmp_path)
