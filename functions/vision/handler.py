"""``vision``: what a photo or a screen frame shows and says (the vlm model server).

Each ``device.image.camera.raw`` photo and ``device.video.screen.raw`` keyframe (JPEG, PNG
or WebP, inline or by blob reference) is scaled down to ``LOOM_VISION_MAX_SIDE`` and sent
to the ``vlm`` model, whose answer is the catalog's own fields of
``media.image.analysis.minicpm_results`` (caption, text read off the image, objects,
scene), held to its schema as the model writes it. The function adds Loom's fields (the
device, the time, the event it was made from, how long the analysis took, the model)
and derives the event's id from the input's, so a redelivery makes the same event.

Bytes that are not an image, an image too large to decode, a missing blob or one that
is not what its reference says, and an image the model refuses are dead letters. A model
server that is scaled to zero is waited for (the client keeps trying while a GPU node
starts), then the delivery is retried.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from functions.vision.images import image_bytes, shrink
from functions.vision.settings import VisionSettings, vision_settings
from loom.catalog import default_catalog
from loom.runtime.context import Context
from loom.runtime.event import Event
from loom.runtime.registry import function
from loom.settings import LoomSettings
from loom.store import BlobStore, open_blob_store, store_settings

CAMERA = "device.image.camera.raw"
SCREEN = "device.video.screen.raw"
RESULTS = "media.image.analysis.minicpm_results"
MODEL = "vlm"


@dataclass(frozen=True)
class Vision:
    """What the handler keeps between events (``ctx.state``)."""

    config: VisionSettings
    blobs: BlobStore
    fields: frozenset[str]  # what the results schema has room for
    max_ms: int  # the largest processing_ms it takes


@asynccontextmanager
async def open_vision(
    settings: LoomSettings, *, blobs: BlobStore | None = None
) -> AsyncIterator[Vision]:
    """Opens the blob store (LOOM_STORE_BLOB_URL unless ``blobs`` is given)."""
    if blobs is None:
        stored = store_settings(settings)
        blobs = open_blob_store(stored.store_blob_url, stored.store_s3_endpoint_url)
    props = default_catalog()[RESULTS].data_schema["properties"]
    max_ms = int(props["processing_ms"].get("maximum", 3_600_000))
    yield Vision(vision_settings(settings), blobs, frozenset(props), max_ms)


@function(
    consumes=[CAMERA, SCREEN],
    produces=[RESULTS],
    models=[MODEL],
    lifespan=open_vision,
    concurrency=4,  # each holds an image (up to 16 MiB) and its decoded pixels while it waits
    retries=8,  # 1 s doubling, after the client's own wait for a GPU server to wake up
    memory="1Gi",
)
async def handle(event: Event, ctx: Context) -> Event:
    """Caption, text, objects and scene of a photo or screen frame (a vision-language model)."""
    vision: Vision = ctx.state
    data: dict[str, Any] = event.data
    raw = await image_bytes(data, vision.blobs)
    ready = await asyncio.to_thread(shrink, raw, max_side=vision.config.vision_max_side,
                                    max_pixels=vision.config.vision_max_pixels)  # fmt: skip
    request: dict[str, Any] = {"image": base64.b64encode(ready).decode("ascii")}
    if vision.config.vision_prompt:
        request["prompt"] = vision.config.vision_prompt
    started = time.perf_counter()
    answer = await ctx.model(MODEL).infer(request)
    took = (answer.get("timings") or {}).get("total_ms")
    if not isinstance(took, int):
        took = round((time.perf_counter() - started) * 1000)
    out: dict[str, Any] = {
        "schema_version": default_catalog()[RESULTS].schema_version,
        "device_id": data["device_id"],
        "timestamp": data["timestamp"],
        "processing_ms": min(max(took, 0), vision.max_ms),
    }
    made_by = answer.get("model") or {}
    if made_by.get("name"):
        out["model"] = {"name": str(made_by["name"])[:200]}
        if made_by.get("version"):
            out["model"]["version"] = str(made_by["version"])[:100]
    analysis: dict[str, Any] = answer["analysis"]
    ours = {*out, "derived_from"}
    out.update({k: v for k, v in analysis.items() if k in vision.fields and k not in ours})
    return event.derive(RESULTS, out, source=ctx.source)
