"""The vision function as the graph sees it: one analysis per photo or screen frame,
valid in the catalog and tied to its source; dead letters for what is no image."""

from __future__ import annotations

import base64
import hashlib
import io
import sys
from typing import Any

import pytest

pytest.importorskip("transformers")
pytest.importorskip("outlines")
pytest.importorskip("models.base", reason="needs the models extra (kserve)")

from PIL import Image

from functions.vision.images import shrink
from loom.runtime.event import Event
from loom.runtime.invoke import PoisonEvent
from loom.testing import FunctionHarness, assert_emitted, example_event
from tests.models.vlm.tiny import encoded, picture, sideways_jpeg

CAMERA, SCREEN = "device.image.camera.raw", "device.video.screen.raw"
RESULTS = "media.image.analysis.minicpm_results"


def blob_event(harness: FunctionHarness, raw: bytes, sha256: str | None = None) -> Event:
    ref = harness.state.blobs.put(raw, "image/png").as_json()
    if sha256:
        ref["sha256"] = sha256
    data = {"device_id": "laptop-1", "timestamp": "2026-11-25T08:15:30+01:00",
            "blob_ref": ref, "format": "png", "width": 300, "height": 200}  # fmt: skip
    return Event(type=SCREEN, data=data, source="/devices/laptop-1", device_id="laptop-1")


@pytest.mark.parametrize(("type_", "name"), [(CAMERA, "seed-phone-rear-photo"),
                                             (SCREEN, "seed-mac-keyframe")])  # fmt: skip
async def test_a_photo_or_screen_frame_becomes_one_analysis_of_it(
    harness: FunctionHarness, type_: str, name: str
) -> None:
    event = example_event(type_, name=name)
    (made,) = assert_emitted(await harness.call(event), RESULTS, count=1)

    data: dict[str, Any] = made.data
    assert data["derived_from"] == {"type": type_, "source": event.source, "id": event.id}
    assert (data["device_id"], data["timestamp"]) == (event.data["device_id"],
                                                      event.data["timestamp"])  # fmt: skip
    assert data["model"] == {"name": "openbmb/MiniCPM-V-4.6"}
    assert data["schema_version"] == "1.0"
    assert {"caption", "ocr_text", "objects", "scene"} <= set(data)
    assert data["processing_ms"] >= 0
    # the id is derived from the input's: a redelivery makes the same event, stored once
    assert made.id == event.derive(RESULTS, {}, source=made.source).id
    assert made.device_id == event.device_id


async def test_an_image_by_blob_reference_is_read_and_analysed(harness: FunctionHarness) -> None:
    raw = encoded(picture(300, 200, "stripes"), "PNG")
    made = await harness.call(blob_event(harness, raw))

    (result,) = assert_emitted(made, RESULTS, count=1)
    assert result.data["derived_from"]["type"] == SCREEN
    assert {"caption", "objects"} <= set(result.data)


@pytest.mark.parametrize("type_", [CAMERA, SCREEN])
async def test_bytes_that_are_no_image_are_a_dead_letter(
    harness: FunctionHarness, type_: str
) -> None:
    # the catalog's minimal example holds a JPEG's first and last markers and nothing between
    with pytest.raises(PoisonEvent, match=r"not a readable JPEG|cannot be decoded"):
        await harness.call(example_event(type_, name="minimal-inline-jpeg"))


async def test_a_blob_that_is_missing_or_not_what_it_says_is_a_dead_letter(
    harness: FunctionHarness,
) -> None:
    with pytest.raises(PoisonEvent, match="does not exist"):
        await harness.call(example_event(CAMERA, name="minimal-blob-ref"))
    raw = encoded(picture(30, 20), "PNG")
    with pytest.raises(PoisonEvent, match="does not match its sha256"):
        await harness.call(blob_event(harness, raw, sha256=hashlib.sha256(b"x").hexdigest()))


async def test_an_image_too_large_to_decode_is_a_dead_letter(harness: FunctionHarness) -> None:
    event = example_event(CAMERA, name="seed-phone-rear-photo")
    big = encoded(picture(1100, 1000), "PNG")  # LOOM_VISION_MAX_PIXELS is 1 000 000 here
    event = Event(type=CAMERA, source=event.source, device_id=event.device_id,
                  data={**event.data, "image_data": base64.b64encode(big).decode()})  # fmt: skip
    with pytest.raises(PoisonEvent, match="1100x1000 pixels, more than 1000000"):
        await harness.call(event)


def test_large_images_are_scaled_down_upright_and_small_ones_go_as_they_came() -> None:
    small = encoded(picture(60, 40))
    assert shrink(small, max_side=64, max_pixels=10**6) == small

    wide = Image.open(io.BytesIO(shrink(encoded(picture(300, 200), "PNG"), max_side=64,
                                        max_pixels=10**6)))  # fmt: skip
    assert (wide.format, wide.size) == ("PNG", (64, 43))

    photo = Image.open(io.BytesIO(shrink(sideways_jpeg(200, 120), max_side=64,
                                         max_pixels=10**6)))  # fmt: skip
    assert (photo.format, photo.size) == ("JPEG", (38, 64))  # turned as its EXIF said


def test_without_pillow_images_go_as_they_came_checked_by_their_first_bytes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    large = encoded(picture(300, 200))
    monkeypatch.setitem(sys.modules, "PIL", None)  # a core install: no models extra
    assert shrink(large, max_side=64, max_pixels=10**6) == large  # the server scales it
    with pytest.raises(PoisonEvent, match="not a JPEG, PNG or WebP"):
        shrink(b"GIF89a" + bytes(40), max_side=64, max_pixels=10**6)
