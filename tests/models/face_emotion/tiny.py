"""What the face_emotion tests share: a tiny emotion classifier of a real transformers
architecture (ViT, random weights, the emotion labels as id2label) written as a model
directory, and images to look at: a photo with a face (scikit-image's astronaut) and
pictures with none."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

# FER-2013's seven and AffectNet's contempt, spelled as those data sets do.
LABELS = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise", "contempt")
# Where the astronaut's face is in skimage.data.astronaut() (x, y, width, height).
ASTRONAUT_FACE = (177, 67, 93, 93)


def tiny_classifier(folder: Path, labels: tuple[str, ...] = LABELS) -> Path:
    """A ViT image classifier with random weights and its image processor, saved as
    ``save_pretrained`` does: what ``LOOM_FACE_EMOTION_MODEL_DIR`` points at."""
    import torch
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    config = ViTConfig(
        image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2,
        num_attention_heads=2, intermediate_size=64,
        id2label=dict(enumerate(labels)), label2id={label: i for i, label in enumerate(labels)},
    )  # fmt: skip
    torch.manual_seed(7)
    ViTForImageClassification(config).save_pretrained(folder)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def astronaut() -> np.ndarray:
    from skimage import data

    return np.asarray(data.astronaut())


def no_face() -> np.ndarray:
    """A picture of shapes on a gradient: edges and blobs, and nothing like a face."""
    height, width = 360, 480
    ys, xs = np.mgrid[0:height, 0:width]
    picture = np.zeros((height, width, 3), np.uint8)
    picture[..., 0] = xs * 255 // width
    picture[..., 1] = ys * 255 // height
    picture[..., 2] = 90
    picture[40:140, 60:200] = (240, 240, 240)
    picture[((xs - 340) ** 2 + (ys - 220) ** 2) < 70**2] = (30, 30, 160)
    picture[250:330:8, 40:260] = 0
    return picture


def encoded(pixels: np.ndarray, fmt: str = "JPEG", orientation: int | None = None) -> bytes:
    """``pixels`` as an image file; ``orientation`` sets its EXIF orientation tag."""
    from PIL import Image

    out = io.BytesIO()
    image = Image.fromarray(pixels)
    if orientation is None:
        image.save(out, fmt)
    else:
        exif = Image.Exif()
        exif[0x0112] = orientation
        image.save(out, fmt, exif=exif)
    return out.getvalue()


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    return w * h / (aw * ah + bw * bh - w * h)
