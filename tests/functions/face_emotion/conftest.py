"""The face_emotion function with its blobs in a temporary directory, and a model client:
the real predictor in-process (a tiny classifier) or a stand-in with a set answer."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from functions.face_emotion.handler import FaceEmotion, open_face_emotion
from loom.settings import LoomSettings
from loom.store import LocalBlobStore

os.environ["HF_HUB_OFFLINE"] = "1"  # nothing is ever downloaded
os.environ["TRANSFORMERS_OFFLINE"] = "1"


class Answers:
    """A model client that gives one set answer and keeps what it was asked."""

    def __init__(self, answer: dict[str, Any] | Exception) -> None:
        self.answer = answer
        self.asked: list[dict[str, Any]] = []

    async def infer(self, payload: dict[str, Any]) -> dict[str, Any]:
        self.asked.append(payload)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


@pytest.fixture
def blobs(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs")


@pytest.fixture
async def state(blobs: LocalBlobStore) -> AsyncIterator[FaceEmotion]:
    async with open_face_emotion(LoomSettings(), blobs=blobs) as opened:
        yield opened


@pytest.fixture(scope="module")
def local_model(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The real predictor (OpenCV's cascades, a tiny ViT) behind a LocalModelClient."""
    cv2 = pytest.importorskip("cv2")
    pytest.importorskip("transformers")
    pytest.importorskip("models.base", reason="needs the models extra (kserve)")
    if not hasattr(cv2, "CascadeClassifier"):
        pytest.skip("this OpenCV has no Haar cascades (opencv-python-headless 5 dropped them)")
    from loom.runtime.model_client import LocalModelClient
    from models.face_emotion.predictor import FaceEmotionModel
    from models.face_emotion.settings import FaceEmotionSettings
    from tests.models.face_emotion.tiny import tiny_classifier

    folder = tiny_classifier(tmp_path_factory.mktemp("face-emotion-vit"))
    settings = FaceEmotionSettings(
        face_emotion_model_dir=str(folder), face_emotion_model_name="tiny-vit"
    )
    model = FaceEmotionModel("face_emotion", settings)
    model.load()
    return LocalModelClient("face_emotion", model)
