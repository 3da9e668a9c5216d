"""The face_emotion model server: the faces in one image and the emotion on each.

Request (one JSON document, see ``models/base.py``)::

    {"image": "<base64 of a JPEG, PNG or WebP>"}

Answer::

    {"faces": [{"box": {"x": 177, "y": 67, "width": 93, "height": 93},
                "scores": {"happy": 0.81, "neutral": 0.12, ...},
                "emotion": "happy", "confidence": 0.81}, ...],
     "image": {"width": 512, "height": 512},
     "model": {"name": "...", "version": "..."}}

Boxes are in pixels of the image as it is shown (its EXIF orientation applied), largest
face first; ``scores`` is the softmax over the classifier's own labels (its ``id2label``).
Decoding and detection run in worker threads; the crops of all concurrent requests share
forward passes of the classifier (up to ``LOOM_FACE_EMOTION_MAX_BATCH`` at a time).
An image that is not base64, too large or not decodable is refused (400).
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
from kserve.errors import InvalidInput

from loom.runtime.batcher import Batcher
from loom.runtime.models import model
from loom.settings import load_settings
from models.base import JsonModel
from models.face_emotion.classifier import EmotionClassifier
from models.face_emotion.faces import Box, FaceDetector, crop
from models.face_emotion.settings import DEFAULT_STORAGE_URI, FaceEmotionSettings
from models.images import UnreadableImage, decode, image_bytes

__all__ = ["FaceEmotionModel"]


@model(
    name="face_emotion",
    storage_uri_env="LOOM_FACE_EMOTION_STORAGE_URI",
    default_storage_uri=DEFAULT_STORAGE_URI,
    gpu=True,
    memory="8Gi",  # torch and the CUDA runtime, decoded photos (up to 50 MP) in flight
)
class FaceEmotionModel(JsonModel):
    """Faces (OpenCV Haar cascades) and the emotion on each (a transformers classifier)."""

    def __init__(self, name: str, settings: FaceEmotionSettings | None = None) -> None:
        super().__init__(name)
        self._given = settings
        self.settings: FaceEmotionSettings | None = None
        self.detector: FaceDetector | None = None
        self.classifier: EmotionClassifier | None = None
        self.batcher: Batcher[np.ndarray, np.ndarray] | None = None

    def load(self) -> bool:
        settings = self._given or load_settings(FaceEmotionSettings)
        self.detector = FaceDetector(settings)
        self.classifier = EmotionClassifier.load(settings)
        self.batcher = Batcher(self.classifier, max_batch=settings.face_emotion_max_batch)
        self.settings = settings
        self.ready = True
        return True

    async def infer(self, payload: dict[str, Any]) -> dict[str, Any]:
        if self.settings is None or self.detector is None or self.classifier is None \
                or self.batcher is None:  # fmt: skip
            raise RuntimeError(f"model {self.name!r} is not loaded")
        raw = image_bytes(
            payload, self.settings.face_emotion_max_image_bytes, "LOOM_FACE_EMOTION_MAX_IMAGE_BYTES"
        )
        try:
            rgb, boxes, crops = await asyncio.to_thread(self._faces, raw)
        except UnreadableImage as exc:
            raise InvalidInput(str(exc)) from None
        rows = await asyncio.gather(*(self.batcher.submit(c) for c in crops))
        labels = self.classifier.labels
        return {
            "faces": [_face(box, row, labels) for box, row in zip(boxes, rows, strict=True)],
            "image": {"width": int(rgb.shape[1]), "height": int(rgb.shape[0])},
            "model": {"name": self.classifier.name, "version": self.classifier.version},
        }

    def _faces(self, raw: bytes) -> tuple[np.ndarray, list[Box], list[np.ndarray]]:
        assert self.settings is not None
        assert self.detector is not None
        assert self.classifier is not None
        pixels = self.settings.face_emotion_max_pixels
        rgb = np.asarray(decode(raw, max_pixels=pixels, setting="LOOM_FACE_EMOTION_MAX_PIXELS"))
        boxes = self.detector.detect(rgb)
        size, margin = self.classifier.input_size, self.settings.face_emotion_margin
        return rgb, boxes, [crop(rgb, box, margin, size) for box in boxes]


def _face(box: Box, row: np.ndarray, labels: list[str]) -> dict[str, Any]:
    best = int(np.argmax(row))
    return {
        "box": box.as_json(),
        "scores": {label: round(float(p), 6) for label, p in zip(labels, row, strict=True)},
        "emotion": labels[best],
        "confidence": round(float(row[best]), 6),
    }
