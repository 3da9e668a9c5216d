"""The face_emotion function: photos in (inline or by blob), one emotion_results event
out in the catalog's words; what can never be read is a dead letter."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from functions.face_emotion.handler import CAMERA, EMOTIONS, FaceEmotion, handle
from loom.runtime.event import Event
from loom.runtime.invoke import HandlerFailed, PoisonEvent, Unavailable
from loom.runtime.model_client import ModelUnavailable
from loom.store import LocalBlobStore
from loom.testing import FunctionHarness, assert_emitted, example_event
from tests.functions.face_emotion.conftest import Answers

PNG_1X1 = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGNQSFgAAAHEASFiX4r9AAAAAElF"
           "TkSuQmCC")  # fmt: skip
ENUM = {"neutral", "happy", "sad", "angry", "fearful", "surprised", "disgusted", "calm"}


def photo(**data: Any) -> Event:
    body = {"device_id": "pixel-7", "timestamp": "2026-11-25T08:15:30.123Z", "width": 1,
            "height": 1, "format": "png", "image_data": PNG_1X1, **data}  # fmt: skip
    return Event(type=CAMERA, data=body, source="/devices/pixel-7", device_id="pixel-7")


def answer(*faces: dict[str, Any]) -> dict[str, Any]:
    return {"faces": list(faces), "image": {"width": 1, "height": 1},
            "model": {"name": "vit-face-expression", "version": "sha256:0123456789ab"}}  # fmt: skip


def face(scores: dict[str, float], x: int = 10) -> dict[str, Any]:
    top = max(scores, key=lambda label: scores[label])
    return {"box": {"x": x, "y": 20, "width": 64, "height": 64}, "scores": scores,
            "emotion": top, "confidence": scores[top]}  # fmt: skip


def harness(state: FaceEmotion, model: Any) -> FunctionHarness:
    return FunctionHarness(handle, models={"face_emotion": model}, state=state)


async def test_the_models_labels_become_the_catalogs_emotions(state: FaceEmotion) -> None:
    model = Answers(answer(
        face({"happy": 0.6, "fear": 0.25, "Surprise": 0.1, "neutral": 0.05}),
        face({"contempt": 0.5, "sadness": 0.3, "anger": 0.15, "disgust": 0.05}, x=200),
    ))  # fmt: skip
    event = photo()

    (made,) = assert_emitted(await harness(state, model).call(event), EMOTIONS, count=1)

    assert model.asked == [{"image": PNG_1X1}]
    first, second = made.data["faces"]
    assert (first["emotion"], first["confidence"]) == ("happy", 0.6)
    assert first["scores"] == {"happy": 0.6, "fearful": 0.25, "surprised": 0.1, "neutral": 0.05}
    assert first["bbox"] == {"x": 10, "y": 20, "width": 64, "height": 64}
    # contempt has no name in the catalog: the likeliest emotion it can name is given
    assert (second["emotion"], second["confidence"]) == ("sad", 0.3)
    assert set(second["scores"]) == {"sad", "angry", "disgusted"}
    assert made.data["model"] == {"name": "vit-face-expression", "version": "sha256:0123456789ab"}
    assert made.data["derived_from"] == {"type": CAMERA, "source": event.source, "id": event.id}
    assert made.data["timestamp"] == event.data["timestamp"]
    again = await harness(state, model).call(event)
    assert again[0].id == made.id  # a redelivery makes the same event


async def test_a_photo_without_faces_is_an_event_with_none(state: FaceEmotion) -> None:
    made = await harness(state, Answers(answer())).call(photo())

    (result,) = assert_emitted(made, EMOTIONS, count=1)
    assert result.data["faces"] == []


async def test_an_image_by_blob_reference_is_read_and_checked(
    state: FaceEmotion, blobs: LocalBlobStore
) -> None:
    raw = base64.b64decode(PNG_1X1)
    ref = blobs.put(raw, "image/png").as_json()
    model = Answers(answer())
    without = {k: v for k, v in photo().data.items() if k != "image_data"}

    await harness(state, model).call(Event(type=CAMERA, data={**without, "blob_ref": ref}))
    assert model.asked == [{"image": PNG_1X1}]

    wrong = {**ref, "sha256": "0" * 64}
    with pytest.raises(PoisonEvent, match="does not match its sha256"):
        await harness(state, model).call(Event(type=CAMERA, data={**without, "blob_ref": wrong}))
    gone = {**ref, "uri": ref["uri"].replace(ref["sha256"], "f" * 64)}
    with pytest.raises(PoisonEvent, match="does not exist"):
        await harness(state, model).call(Event(type=CAMERA, data={**without, "blob_ref": gone}))


async def test_bytes_that_are_no_image_never_reach_the_model(state: FaceEmotion) -> None:
    model = Answers(answer())
    text = base64.b64encode(b"%PDF-1.7 not a photo at all").decode()

    with pytest.raises(PoisonEvent, match="not a JPEG, PNG or WebP"):
        await harness(state, model).call(photo(image_data=text))
    assert model.asked == []


async def test_labels_the_catalog_cannot_name_fail_loudly(state: FaceEmotion) -> None:
    model = Answers(answer(face({"LABEL_0": 0.7, "LABEL_1": 0.3})))

    with pytest.raises(HandlerFailed, match="none of which is an emotion"):
        await harness(state, model).call(photo())


async def test_a_model_server_that_is_down_is_retried_not_dead_lettered(
    state: FaceEmotion,
) -> None:
    model = Answers(ModelUnavailable("model 'face_emotion' answered 503 for 300 s"))

    with pytest.raises(Unavailable):
        await harness(state, model).call(photo())


async def test_the_astronaut_photo_through_the_real_predictor(
    state: FaceEmotion, local_model: Any
) -> None:
    from tests.models.face_emotion.tiny import ASTRONAUT_FACE, astronaut, encoded, iou

    image = base64.b64encode(encoded(astronaut())).decode("ascii")
    event = photo(image_data=image, format="jpeg", width=512, height=512, camera_type="front")

    (made,) = assert_emitted(await harness(state, local_model).call(event), EMOTIONS, count=1)

    (found,) = made.data["faces"]
    b = found["bbox"]
    assert iou((b["x"], b["y"], b["width"], b["height"]), ASTRONAUT_FACE) > 0.7
    assert found["emotion"] in ENUM
    assert set(found["scores"]) <= ENUM
    assert found["confidence"] == found["scores"][found["emotion"]]
    assert made.data["model"]["name"] == "tiny-vit"
    assert made.data["model"]["version"].startswith("sha256:")


async def test_the_golden_camera_examples(state: FaceEmotion, local_model: Any) -> None:
    run = harness(state, local_model)

    made = await run.call(example_event(CAMERA, name="seed-phone-rear-photo"))  # a 1x1 PNG
    (result,) = assert_emitted(made, EMOTIONS, count=1)
    assert result.data["faces"] == []
    assert result.data["device_id"] == "pixel-7-ab12"

    with pytest.raises(PoisonEvent, match="refused the input"):  # JPEG headers, no picture
        await run.call(example_event(CAMERA, name="minimal-inline-jpeg"))
    with pytest.raises(PoisonEvent, match="does not exist"):  # a blob this store never had
        await run.call(example_event(CAMERA, name="minimal-blob-ref"))
