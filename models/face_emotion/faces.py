"""Upright RGB pixels in (``models.images.decode``), faces out: OpenCV's Haar cascades,
and square crops around each face.

Faces are looked for in a grey, histogram-equalised copy scaled down to a bounded side
(a 12-megapixel photo would take seconds at full size); boxes come back in the
original's pixels and crops are cut from the original.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from loom.errors import ConfigError
from models.face_emotion.settings import FaceEmotionSettings

__all__ = ["Box", "FaceDetector", "crop"]

_WINDOW = 24  # the frontal cascade's own window, in pixels
_SAME_FACE = 0.3  # boxes overlapping more than this (IoU), or nested, are one face


@dataclass(frozen=True)
class Box:
    """A face in pixels of the original image: top-left corner, width, height."""

    x: int
    y: int
    width: int
    height: int

    @property
    def area(self) -> int:
        return self.width * self.height

    def as_json(self) -> dict[str, int]:
        return {"x": self.x, "y": self.y, "width": self.width, "height": self.height}


class FaceDetector:
    """OpenCV's frontal-face Haar cascade (and, if asked, the profile one both ways)."""

    def __init__(self, settings: FaceEmotionSettings) -> None:
        self.settings = settings
        self.frontal = _cascade("haarcascade_frontalface_default.xml")
        self.profile = (
            _cascade("haarcascade_profileface.xml") if settings.face_emotion_profile_faces else None
        )
        # One detection at a time: OpenCV parallelises inside detectMultiScale already, and
        # a cascade object is not meant to be shared between threads.
        self._lock = threading.Lock()

    def detect(self, rgb: np.ndarray) -> list[Box]:
        """The faces in ``rgb``, largest first, at most ``max_faces`` of them."""
        import cv2

        s = self.settings
        height, width = rgb.shape[:2]
        scale = min(1.0, s.face_emotion_detect_max_side / max(height, width))
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
        grey = cv2.equalizeHist(grey)
        side = max(_WINDOW, round(s.face_emotion_min_face_px * scale))
        found: list[tuple[int, int, int, int]] = []
        with self._lock:
            found += self._run(self.frontal, grey, side)
            if self.profile is not None:
                found += self._run(self.profile, grey, side)
                mirrored = self._run(self.profile, cv2.flip(grey, 1), side)
                found += [(grey.shape[1] - x - w, y, w, h) for x, y, w, h in mirrored]
        boxes = [_scaled(b, scale, width, height) for b in _distinct(found)]
        boxes.sort(key=lambda b: (-b.area, b.y, b.x))
        return boxes[: s.face_emotion_max_faces]

    def _run(self, cascade: Any, grey: np.ndarray, side: int) -> list[tuple[int, int, int, int]]:
        s = self.settings
        hits = cascade.detectMultiScale(
            grey,
            scaleFactor=s.face_emotion_scale_factor,
            minNeighbors=s.face_emotion_min_neighbors,
            minSize=(side, side),
        )
        return [(int(x), int(y), int(w), int(h)) for x, y, w, h in hits]


def crop(rgb: np.ndarray, box: Box, margin: float, size: tuple[int, int]) -> np.ndarray:
    """A square around ``box`` with ``margin`` of its side added on every side (cut at
    the image's edges), resized to ``size`` (height, width): what the classifier takes."""
    import cv2

    height, width = rgb.shape[:2]
    side = max(box.width, box.height) * (1 + 2 * margin)
    cx, cy = box.x + box.width / 2, box.y + box.height / 2
    left, top = max(0, round(cx - side / 2)), max(0, round(cy - side / 2))
    right, bottom = min(width, round(cx + side / 2)), min(height, round(cy + side / 2))
    face = rgb[top:bottom, left:right]
    shrink = face.shape[0] > size[0] or face.shape[1] > size[1]
    resized = cv2.resize(face, (size[1], size[0]),
                         interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)  # fmt: skip
    return np.ascontiguousarray(resized)


def _cascade(name: str) -> Any:
    import cv2

    opencv: Any = cv2  # OpenCV 5's type stubs no longer know the cascade classifier
    try:
        path = Path(opencv.data.haarcascades) / name
        cascade = opencv.CascadeClassifier(str(path))
    except AttributeError:  # OpenCV 5 moved the cascade classifier out of its main package
        raise ConfigError(
            "this OpenCV has no Haar cascade classifier (OpenCV 5 dropped it from "
            "opencv-python-headless): face_emotion needs opencv-python-headless<5"
        ) from None
    if cascade.empty():
        raise ConfigError(f"OpenCV's cascade {path} is missing or unreadable")
    return cascade


def _distinct(found: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int]]:
    """One box per face: a later box that overlaps or sits inside a kept one is dropped."""
    kept: list[tuple[int, int, int, int]] = []
    for box in found:
        if all(not _same(box, other) for other in kept):
            kept.append(box)
    return kept


def _same(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    smaller = min(aw * ah, bw * bh)
    union = aw * ah + bw * bh - inter
    return inter / union > _SAME_FACE or inter >= 0.8 * smaller


def _scaled(box: tuple[int, int, int, int], scale: float, width: int, height: int) -> Box:
    x, y, w, h = (v / scale for v in box)
    left, top = min(max(0, round(x)), width - 1), min(max(0, round(y)), height - 1)
    right, bottom = min(width, round(x + w)), min(height, round(y + h))
    return Box(left, top, max(1, right - left), max(1, bottom - top))
