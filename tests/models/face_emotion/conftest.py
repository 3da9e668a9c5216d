"""The face_emotion predictor, loaded once per module from a tiny classifier directory."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"  # nothing is ever downloaded
os.environ["TRANSFORMERS_OFFLINE"] = "1"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.models.face_emotion.tiny import tiny_classifier

    return tiny_classifier(tmp_path_factory.mktemp("face-emotion-vit"))


@pytest.fixture(scope="module")
def predictor(model_dir: Path) -> Any:
    from models.face_emotion.predictor import FaceEmotionModel
    from models.face_emotion.settings import FaceEmotionSettings

    model = FaceEmotionModel(
        "face_emotion",
        FaceEmotionSettings(
            face_emotion_model_dir=str(model_dir), face_emotion_model_name="tiny-vit"
        ),
    )
    model.load()
    return model
