"""The face_emotion predictor as a client sees it: faces found where they are, scores
over the classifier's own labels, and what it refuses."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("cv2")
pytest.importorskip("transformers")
pytest.importorskip("models.base", reason="needs the models extra (kserve)")

import cv2

from loom.errors import ConfigError
from loom.runtime.model_client import LocalModelClient, ModelRefused
from models.face_emotion.classifier import EmotionClassifier
from models.face_emotion.faces import FaceDetector
from models.face_emotion.predictor import FaceEmotionModel
from models.face_emotion.settings import FaceEmotionSettings
from tests.models.face_emotion.tiny import (
    ASTRONAUT_FACE,
    LABELS,
    astronaut,
    encoded,
    iou,
    no_face,
)

CASCADES = hasattr(cv2, "CascadeClassifier")
needs_cascades = pytest.mark.skipif(
    not CASCADES,
    reason="this OpenCV has no Haar cascades (opencv-python-headless 5 dropped them)",
)


def request(raw: bytes) -> dict[str, Any]:
    return {"image": base64.b64encode(raw).decode("ascii")}


def box(face: dict[str, Any]) -> tuple[float, ...]:
    b = face["box"]
    return (b["x"], b["y"], b["width"], b["height"])


@needs_cascades
async def test_the_astronauts_face_is_found_and_scored_over_the_models_labels(
    predictor: FaceEmotionModel,
) -> None:
    answer = await predictor.infer_json(request(encoded(astronaut())))

    assert answer["image"] == {"width": 512, "height": 512}
    (face,) = answer["faces"]
    assert iou(box(face), ASTRONAUT_FACE) > 0.7
    x, y, w, h = box(face)
    assert min(x, y) >= 0
    assert max(x + w, y + h) <= 512
    assert list(face["scores"]) == list(LABELS)
    assert sum(face["scores"].values()) == pytest.approx(1.0, abs=1e-4)
    assert all(0.0 <= p <= 1.0 for p in face["scores"].values())
    assert face["emotion"] == max(face["scores"], key=face["scores"].get)
    assert face["confidence"] == face["scores"][face["emotion"]]
    assert answer["model"]["name"] == "tiny-vit"
    assert answer["model"]["version"].startswith("sha256:")


@needs_cascades
async def test_a_picture_without_a_face_has_none(predictor: FaceEmotionModel) -> None:
    answer = await predictor.infer_json(request(encoded(no_face(), "PNG")))

    assert answer["faces"] == []
    assert answer["image"] == {"width": 480, "height": 360}


@needs_cascades
async def test_faces_share_forward_passes_fewer_than_one_per_face(
    predictor: FaceEmotionModel,
) -> None:
    two = encoded(np.hstack([astronaut(), astronaut()[:, ::-1]]))
    assert predictor.batcher is not None
    before = predictor.batcher.stats.calls, predictor.batcher.stats.items

    answers = await asyncio.gather(*(predictor.infer_json(request(two)) for _ in range(3)))

    calls = predictor.batcher.stats.calls - before[0]
    assert predictor.batcher.stats.items - before[1] == 6
    assert 1 <= calls <= 3  # one image's two faces in one pass; requests may join
    assert predictor.batcher.stats.largest >= 2
    for answer in answers:
        left, right = sorted(answer["faces"], key=lambda f: f["box"]["x"])
        assert iou(box(left), ASTRONAUT_FACE) > 0.6
        mirrored = (1024 - ASTRONAUT_FACE[0] - ASTRONAUT_FACE[2], *ASTRONAUT_FACE[1:])
        assert iou(box(right), mirrored) > 0.6


@needs_cascades
async def test_a_photo_stored_sideways_is_read_upright(predictor: FaceEmotionModel) -> None:
    upright = astronaut()[:, :400]
    sideways = np.ascontiguousarray(np.rot90(upright))  # as the sensor wrote it
    answer = await predictor.infer_json(request(encoded(sideways, orientation=6)))

    assert answer["image"] == {"width": 400, "height": 512}
    (face,) = answer["faces"]
    assert iou(box(face), ASTRONAUT_FACE) > 0.7


@needs_cascades
async def test_what_is_not_a_readable_image_is_refused(
    predictor: FaceEmotionModel, model_dir: Path
) -> None:
    client = LocalModelClient("face_emotion", predictor)
    with pytest.raises(ModelRefused, match="base64"):
        await client.infer({"image": "not base64!"})
    with pytest.raises(ModelRefused, match="expected 'image'"):
        await client.infer({"picture": "AAAA"})
    with pytest.raises(ModelRefused, match="not a readable JPEG, PNG or WebP"):
        await client.infer(request(b"GIF89a" + bytes(64)))
    with pytest.raises(ModelRefused, match="not a readable JPEG"):
        await client.infer({"image": "/9j/4AAQSkZJRgABAQAAAQABAAD/2Q=="})  # headers, no frame
    truncated = encoded(astronaut())[:5000]
    with pytest.raises(ModelRefused, match="cannot be decoded"):
        await client.infer(request(truncated))

    small = FaceEmotionModel("face_emotion", FaceEmotionSettings(
        face_emotion_model_dir=str(model_dir), face_emotion_max_image_bytes=4096,
        face_emotion_max_pixels=100_000))  # fmt: skip
    small.load()
    bounded = LocalModelClient("face_emotion", small)
    with pytest.raises(ModelRefused, match="MAX_IMAGE_BYTES"):
        await bounded.infer(request(encoded(astronaut())))
    with pytest.raises(ModelRefused, match="MAX_PIXELS"):
        await bounded.infer(request(encoded(np.zeros((400, 400, 3), np.uint8), "PNG")))


def test_empathic_insight_heads_are_refused_with_the_reason(tmp_path: Path) -> None:
    (tmp_path / "model_anger_best.pth").write_bytes(b"")
    (tmp_path / "model_fear_best.pth").write_bytes(b"")
    settings = FaceEmotionSettings(face_emotion_model_dir=str(tmp_path))
    with pytest.raises(ConfigError, match="SigLIP2"):
        EmotionClassifier.load(settings)


def test_a_hub_id_missing_from_the_cache_is_never_downloaded() -> None:
    settings = FaceEmotionSettings(face_emotion_model_dir="loom-tests/no-such-model")
    with pytest.raises(ConfigError, match="never downloads"):
        EmotionClassifier.load(settings)


@pytest.mark.skipif(CASCADES, reason="this OpenCV has its Haar cascades")
def test_an_opencv_without_haar_cascades_says_what_is_needed() -> None:
    with pytest.raises(ConfigError, match="opencv-python-headless<5"):
        FaceDetector(FaceEmotionSettings())


@pytest.mark.gpu
def test_the_classifier_gives_the_same_scores_on_the_gpu(model_dir: Path) -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    crops = [np.asarray(astronaut()[60:170, 170:280]).copy(), no_face()[:100, :100].copy()]
    on = {
        device: EmotionClassifier.load(
            FaceEmotionSettings(face_emotion_model_dir=str(model_dir), face_emotion_device=device)
        )
        for device in ("cpu", "cuda")
    }
    assert on["cuda"].device == "cuda"
    np.testing.assert_allclose(on["cuda"](crops), on["cpu"](crops), atol=1e-3)


def test_the_classifier_reads_its_labels_size_and_name(model_dir: Path) -> None:
    default = EmotionClassifier.load(FaceEmotionSettings(face_emotion_model_dir=str(model_dir)))
    assert default.labels == list(LABELS)
    assert default.input_size == (32, 32)
    assert default.name == "dima806/facial_emotions_image_detection"  # the storage URI's
    elsewhere = FaceEmotionSettings(
        face_emotion_model_dir=str(model_dir), face_emotion_storage_uri="s3://weights/fer-vit/"
    )
    assert EmotionClassifier.load(elsewhere).name == "fer-vit"
