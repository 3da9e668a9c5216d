"""The emotion classifier: a transformers ``AutoModelForImageClassification`` directory
(config with ``id2label``, image processor, weights), run on batches of face crops.

Loaded from a directory (KServe's storage initializer puts the InferenceService's
``storageUri`` in ``/mnt/models``) or from a hub id already in the local Hugging Face
cache. It never downloads: what it needs must be there before it starts.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from loom.errors import ConfigError
from models.face_emotion.settings import FaceEmotionSettings

__all__ = ["EmotionClassifier"]

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_WEIGHTS = ("*.safetensors", "pytorch_model*.bin")


@dataclass
class EmotionClassifier:
    """Probabilities over ``labels`` for face crops of ``input_size`` (height, width)."""

    model: Any
    processor: Any
    labels: list[str]
    input_size: tuple[int, int]
    name: str
    version: str
    device: str

    @classmethod
    def load(cls, settings: FaceEmotionSettings) -> EmotionClassifier:
        import torch
        from transformers import AutoImageProcessor, AutoModelForImageClassification

        source = settings.face_emotion_model_dir
        folder, version = _resolve(source)
        _refuse_unsupported(folder)
        try:
            processor = AutoImageProcessor.from_pretrained(  # type: ignore[no-untyped-call]
                folder, local_files_only=True
            )
            model = AutoModelForImageClassification.from_pretrained(folder, local_files_only=True)
        except (OSError, ValueError, KeyError) as exc:
            raise ConfigError(
                f"LOOM_FACE_EMOTION_MODEL_DIR={source!r}: not a transformers image "
                f"classifier with its image processor: {exc}"
            ) from exc
        wanted = settings.face_emotion_device
        device = "cuda" if wanted == "cuda" or (wanted == "auto" and torch.cuda.is_available()) \
            else "cpu"  # fmt: skip
        model = model.eval().to(device)
        config = model.config
        id2label = {int(k): str(v) for k, v in (config.id2label or {}).items()}
        labels = [id2label.get(i, f"LABEL_{i}") for i in range(config.num_labels)]
        if all(label == f"LABEL_{i}" for i, label in enumerate(labels)):
            raise ConfigError(f"{source!r}: the model's config names no labels (id2label)")
        name = settings.face_emotion_model_name or _name(settings, folder)
        return cls(model, processor, labels, _input_size(processor, config), name,
                   version or _content_version(folder), device)  # fmt: skip

    def __call__(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """One row of probabilities (softmax over ``labels``) per crop, in one forward pass."""
        import torch

        with torch.inference_mode():
            inputs = self.processor(images=list(crops), return_tensors="pt")
            pixels = inputs["pixel_values"].to(self.device, dtype=self.model.dtype)
            logits = self.model(pixel_values=pixels).logits
            probabilities: np.ndarray = logits.float().softmax(dim=-1).cpu().numpy()
        return probabilities


def _resolve(source: str) -> tuple[Path, str | None]:
    """The directory to load, and the hub revision when it is a cached hub snapshot."""
    folder = Path(source)
    if folder.is_dir():
        return folder, None
    if not _HUB_ID.match(source):
        raise ConfigError(f"LOOM_FACE_EMOTION_MODEL_DIR={source!r} is not a directory")
    from huggingface_hub import snapshot_download

    try:
        snapshot = Path(snapshot_download(source, local_files_only=True))
    except Exception as exc:  # noqa: BLE001 - any miss says the same: it is not here
        raise ConfigError(
            f"LOOM_FACE_EMOTION_MODEL_DIR={source!r} is neither a directory nor a model in "
            f"the local Hugging Face cache, and the model server never downloads "
            f"({type(exc).__name__})"
        ) from None
    return snapshot, snapshot.name


def _refuse_unsupported(folder: Path) -> None:
    """Empathic-Insight-Face (LAION) ships no classifier but one MLP per emotion over
    SigLIP2 embeddings; say so instead of transformers' own puzzled message."""
    if not (folder / "config.json").exists() and any(folder.glob("model_*_best.pth")):
        raise ConfigError(
            f"{folder} holds Empathic-Insight-Face style heads (model_<emotion>_best.pth: one "
            "MLP per emotion over SigLIP2 so400m image embeddings, intensities 0-7), not a "
            "transformers image classifier; face_emotion takes the latter (see README)"
        )


def _input_size(processor: Any, config: Any) -> tuple[int, int]:
    size = getattr(processor, "size", None) or {}
    if not isinstance(size, dict):
        size = dict(size)
    if size.get("height") and size.get("width"):
        return int(size["height"]), int(size["width"])
    if size.get("shortest_edge"):
        edge = int(size["shortest_edge"])
        return edge, edge
    side = getattr(config, "image_size", 224)
    side = side if isinstance(side, int) else int(side[0])
    return side, side


def _name(settings: FaceEmotionSettings, folder: Path) -> str:
    source = settings.face_emotion_model_dir
    if not Path(source).is_dir():
        return source  # a hub id from the local cache
    uri = settings.face_emotion_storage_uri.rstrip("/")
    if uri.startswith("hf://"):
        return uri.removeprefix("hf://")
    return uri.rsplit("/", 1)[-1] or folder.resolve().name


def _content_version(folder: Path) -> str:
    """``sha256:`` and the first 12 hex digits of the weights' SHA-256 (files in name order)."""
    digest = hashlib.sha256()
    files = sorted({p for pattern in _WEIGHTS for p in folder.glob(pattern)})
    for path in files:
        with path.open("rb") as stream:
            while block := stream.read(1 << 20):
                digest.update(block)
    return f"sha256:{digest.hexdigest()[:12]}" if files else "unknown"
