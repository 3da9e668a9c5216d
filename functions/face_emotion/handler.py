"""``face_emotion``: the emotion on each face of a photo (the face_emotion model server).

Each ``device.image.camera.raw`` photo or screenshot (JPEG, PNG or WebP, inline or by blob
reference) goes to the ``face_emotion`` model, which finds the faces and classifies each;
the answer becomes one ``analysis.image.emotion_results`` event: a box in pixels of the
image as shown (its EXIF orientation applied), the likeliest emotion, its confidence and
the scores of every emotion the catalog names. A photo without faces gives an event with
no faces, so that "looked, found none" is kept as well as what was found.

Bytes that are no image, a blob that is missing or not what its reference says, and an
image the model refuses (undecodable, too large) are dead letters. A model server that
is scaled to zero is waited for (the client keeps trying while it starts), then the
delivery is retried.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from functions.face_emotion.emotions import Vocabulary
from loom.catalog import default_catalog
from loom.runtime.context import Context
from loom.runtime.event import Event
from loom.runtime.invoke import HandlerFailed, PoisonEvent
from loom.runtime.registry import function
from loom.settings import LoomSettings
from loom.store import BlobStore, open_blob_store, store_settings
from loom.store.media import blob_bytes, inline_bytes

CAMERA = "device.image.camera.raw"
EMOTIONS = "analysis.image.emotion_results"
MODEL = "face_emotion"
_MAGIC = ((b"\xff\xd8\xff", 0), (b"\x89PNG\r\n\x1a\n", 0), (b"WEBP", 8))


@dataclass(frozen=True)
class FaceEmotion:
    """What the handler keeps between events (``ctx.state``)."""

    blobs: BlobStore
    vocabulary: Vocabulary
    max_faces: int


@asynccontextmanager
async def open_face_emotion(
    settings: LoomSettings, *, blobs: BlobStore | None = None
) -> AsyncIterator[FaceEmotion]:
    """Opens the blob store (LOOM_STORE_BLOB_URL unless ``blobs`` is given)."""
    if blobs is None:
        stored = store_settings(settings)
        blobs = open_blob_store(stored.store_blob_url, stored.store_s3_endpoint_url)
    catalog = default_catalog()
    faces = catalog[EMOTIONS].data_schema["properties"]["faces"]
    yield FaceEmotion(blobs, Vocabulary.of(catalog, EMOTIONS), int(faces.get("maxItems", 500)))


@function(
    consumes=[CAMERA],
    produces=[EMOTIONS],
    models=[MODEL],
    lifespan=open_face_emotion,
    concurrency=8,  # each holds an image (up to 16 MiB) several times over while it waits
    retries=8,  # 1 s doubling, after the client's own wait for a GPU server to wake up
    memory="1Gi",
)
async def handle(event: Event, ctx: Context) -> Event:
    """Emotion on each face of a photo (face detection, then a classifier per face)."""
    state: FaceEmotion = ctx.state
    data: dict[str, Any] = event.data
    image = await _image_base64(data, state.blobs)
    answer = await ctx.model(MODEL).infer({"image": image})
    shown = answer.get("image") or {}
    if {shown.get("width"), shown.get("height")} != {data["width"], data["height"]}:
        ctx.log.warning("face_emotion.size_differs", said=[data["width"], data["height"]],
                        decoded=[shown.get("width"), shown.get("height")])  # fmt: skip
    faces = [_face(found, state.vocabulary) for found in answer["faces"][: state.max_faces]]
    out: dict[str, Any] = {
        "schema_version": "1.0",
        "device_id": data["device_id"],
        "timestamp": data["timestamp"],
        "faces": faces,
    }
    made_by = answer.get("model") or {}
    if made_by.get("name"):
        out["model"] = {"name": str(made_by["name"])[:200]}
        if made_by.get("version"):
            out["model"]["version"] = str(made_by["version"])[:100]
    return event.derive(EMOTIONS, out, source=ctx.source)


def _face(found: dict[str, Any], vocabulary: Vocabulary) -> dict[str, Any]:
    scores = vocabulary.scores(found["scores"])
    if not scores:
        raise HandlerFailed(
            f"model {MODEL!r} answers in labels {sorted(found['scores'])}, none of "
            f"which is an emotion of {EMOTIONS} ({', '.join(vocabulary.names)})"
        )
    emotion = max(scores, key=lambda name: scores[name])
    box = found["box"]
    return {
        "bbox": {k: box[k] for k in ("x", "y", "width", "height")},
        "emotion": emotion,
        "confidence": round(scores[emotion], 4),
        "scores": {name: round(score, 4) for name, score in scores.items()},
    }


async def _image_base64(data: dict[str, Any], blobs: BlobStore) -> str:
    """The image as base64 (as the model takes it), checked to be a JPEG, PNG or WebP."""
    if "image_data" in data:
        text: str = data["image_data"]
        head = inline_bytes(text[:16], "image_data")
    else:
        raw = await asyncio.to_thread(blob_bytes, blobs, data["blob_ref"], "image")
        head, text = raw[:12], base64.b64encode(raw).decode("ascii")
    if not any(head[at : at + len(magic)] == magic for magic, at in _MAGIC):
        raise PoisonEvent("the image's bytes are not a JPEG, PNG or WebP image")
    return text
