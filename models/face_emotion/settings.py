"""Settings of the face_emotion model server (``LOOM_FACE_EMOTION_*``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from loom.settings import LoomSettings

__all__ = ["DEFAULT_STORAGE_URI", "FaceEmotionSettings"]

MiB = 1024 * 1024
# A ViT-base face-expression classifier (FER-2013's seven labels, Apache-2.0) in the plain
# transformers layout. Empathic-Insight-Face is not one: see README.
DEFAULT_STORAGE_URI = "hf://dima806/facial_emotions_image_detection"


class FaceEmotionSettings(LoomSettings):
    """Where the classifier's weights are, and how faces are found and cropped."""

    face_emotion_storage_uri: str = Field(
        default=DEFAULT_STORAGE_URI,
        description="Where the weights come from: KServe's storage initializer copies them "
        "into LOOM_FACE_EMOTION_MODEL_DIR. Also the model's name in results when "
        "LOOM_FACE_EMOTION_MODEL_NAME is unset (the hub id of hf://…, else the last part).",
    )
    face_emotion_model_dir: str = Field(
        default="/mnt/models",
        description="A transformers image-classification model (config.json with id2label, "
        "preprocessor_config.json, weights): a directory, where KServe's storage initializer "
        "puts LOOM_FACE_EMOTION_STORAGE_URI, or a hub id already in the local Hugging Face "
        "cache. Nothing is ever downloaded here.",
    )
    face_emotion_model_name: str | None = Field(
        default=None,
        max_length=200,
        description="Name reported with each result; unset: taken from the storage URI, or "
        "the hub id when LOOM_FACE_EMOTION_MODEL_DIR is one.",
    )
    face_emotion_device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto", description="Where the classifier runs; auto: the GPU when there is one."
    )
    face_emotion_max_image_bytes: int = Field(
        default=16 * MiB, ge=1024, le=256 * MiB, description="Largest encoded image taken."
    )
    face_emotion_max_pixels: int = Field(
        default=50_000_000,
        ge=1024,
        le=500_000_000,
        description="Largest image taken, in pixels (width x height), checked before decoding.",
    )
    face_emotion_detect_max_side: int = Field(
        default=1280,
        ge=160,
        le=16_384,
        description="Faces are looked for in a copy scaled down to this longest side (boxes "
        "are given in the original's pixels, crops are cut from the original).",
    )
    face_emotion_min_face_px: int = Field(
        default=32,
        ge=8,
        le=4096,
        description="Smallest face side looked for, in the original's pixels (never below "
        "the cascade's own 24 px window in the scaled copy).",
    )
    face_emotion_scale_factor: float = Field(
        default=1.1, gt=1.0, le=2.0, description="Haar cascade: step between window sizes."
    )
    face_emotion_min_neighbors: int = Field(
        default=5,
        ge=1,
        le=50,
        description="Haar cascade: overlapping hits a face needs; more gives fewer false faces.",
    )
    face_emotion_profile_faces: bool = Field(
        default=False,
        description="Also look for faces in profile (both directions); finds turned heads, "
        "and more things that are not faces.",
    )
    face_emotion_margin: float = Field(
        default=0.2,
        ge=0.0,
        le=1.0,
        description="Context kept around each face in its crop, as a fraction of the face's "
        "side on every side.",
    )
    face_emotion_max_faces: int = Field(
        default=50, ge=1, le=500, description="Most faces per image (the largest are kept)."
    )
    face_emotion_max_batch: int = Field(
        default=64,
        ge=1,
        le=1024,
        description="Most face crops, of all concurrent requests, in one forward pass.",
    )
