"""The vlm predictor as a client sees it: whatever the weights, an analysis that is valid
in the catalog once Loom adds its fields, within a bounded number of tokens; concurrent
requests decoded together; and what it refuses."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("transformers")
pytest.importorskip("outlines")
pytest.importorskip("models.base", reason="needs the models extra (kserve)")

from loom.catalog import default_catalog
from loom.errors import ConfigError
from loom.runtime.model_client import LocalModelClient, ModelRefused
from models.vlm.engine import Engine
from models.vlm.predictor import VlmModel
from models.vlm.schema import LOOM_FIELDS, RESULTS, fillable_schema, max_chars
from models.vlm.settings import VlmSettings
from tests.models.vlm.tiny import SHORT, encoded, picture, sideways_jpeg

CATALOG = default_catalog()


def request(raw: bytes, **more: Any) -> dict[str, Any]:
    return {"image": base64.b64encode(raw).decode("ascii"), **more}


def as_results(answer: dict[str, Any]) -> dict[str, Any]:
    """The answer as the vision function stores it: Loom's fields around the analysis."""
    return {
        "schema_version": "1.0",
        "device_id": "pixel-7-ab12",
        "timestamp": "2026-11-25T08:15:30.123Z",
        "derived_from": {"type": "device.image.camera.raw", "id": "img-7"},
        **answer["analysis"],
        "processing_ms": answer["timings"]["total_ms"],
        "model": answer["model"],
    }


async def test_every_answer_is_valid_in_the_catalog_and_bounded(predictor: VlmModel) -> None:
    import torch

    images = [
        request(encoded(picture(64, 48))),
        request(encoded(picture(40, 40, "noise"), "PNG"), prompt="Name what you see."),
        request(encoded(picture(200, 100, "stripes"), "WEBP")),
    ]
    bound = max_chars(predictor.schema)
    assert predictor.engine is not None
    assert predictor.engine.max_new_tokens == bound + 1
    assert predictor.batcher is not None
    stats = predictor.batcher.stats
    for seed in (1, 2, 3):
        torch.manual_seed(seed)
        calls = stats.calls
        answers = await asyncio.gather(*(predictor.infer_json(r) for r in images))
        assert stats.calls - calls < len(images)  # requests that met in the queue shared one
        for answer in answers:
            assert CATALOG.violations(RESULTS, as_results(answer)) == []
            text = json.dumps(answer["analysis"], separators=(",", ":"), ensure_ascii=False)
            assert len(text) <= bound
            assert set(answer["analysis"]) == {"caption", "ocr_text", "objects", "scene"}
            assert answer["analysis"]["scene"]
            assert all(obj["label"] for obj in answer["analysis"]["objects"])
            assert answer["model"] == {"name": "openbmb/MiniCPM-V-4.6"}
        assert max(a["batch_size"] for a in answers) > 1
        assert [a["image"] for a in answers] == [
            {"width": 48, "height": 36},  # scaled down to LOOM_VLM_MAX_SIDE
            {"width": 40, "height": 40},
            {"width": 48, "height": 24},
        ]
        timings = answers[0]["timings"]
        assert timings["total_ms"] >= timings["generate_ms"] > 0


async def test_a_photo_is_seen_upright(predictor: VlmModel) -> None:
    answer = await predictor.infer_json(request(sideways_jpeg(40, 24)))

    assert answer["image"] == {"width": 24, "height": 40}
    assert CATALOG.violations(RESULTS, as_results(answer)) == []


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        ({"image": "not base64!"}, "not valid base64"),
        ({"prompt": "what is this?"}, "expected 'image'"),
        (request(b"\xff\xd8\xff\xe0 a JPEG that stops"), "cannot be decoded|not a readable"),
        (request(b"GIF89a" + bytes(40)), "not a readable JPEG, PNG or WebP"),
        (request(encoded(picture(64, 48)), prompt=""), "non-empty text"),
        (request(encoded(picture(64, 48)), prompt=["a list"]), "non-empty text"),
        (request(encoded(picture(64, 48)), prompt="look <image> here"), "special token"),
    ],
)
async def test_what_it_refuses_is_a_dead_letter(
    predictor: VlmModel, payload: dict[str, Any], why: str
) -> None:
    with pytest.raises(ModelRefused, match=why):
        await LocalModelClient("vlm", predictor).infer(payload)


async def test_too_large_an_image_is_refused_before_decoding(model_dir: Path) -> None:
    settings = VlmSettings(vlm_model_dir=str(model_dir), vlm_max_pixels=1024,
                           vlm_max_image_bytes=2048, vlm_warmup=False, **SHORT)  # fmt: skip
    small = VlmModel("vlm", settings)
    small.load()
    client = LocalModelClient("vlm", small)
    with pytest.raises(ModelRefused, match="64x48 pixels, more than 1024"):
        await client.infer(request(encoded(picture(64, 48))))
    with pytest.raises(ModelRefused, match="more than 2048"):
        await client.infer(request(bytes(4096)))


def test_the_model_fills_the_catalogs_own_fields_every_one_bounded() -> None:
    whole = CATALOG.bundled_schema(RESULTS)
    schema = fillable_schema(VlmSettings())

    assert set(schema["properties"]) == set(whole["properties"]) - LOOM_FIELDS
    assert {"caption", "objects"} <= set(schema["properties"])  # the catalog requires them
    for name, prop in schema["properties"].items():
        catalogs = whole["properties"][name]
        assert prop["description"] == catalogs["description"]
        if prop["type"] == "string":
            assert prop["maxLength"] <= catalogs.get("maxLength", prop["maxLength"])
    objects = schema["properties"]["objects"]
    assert objects["maxItems"] == VlmSettings().vlm_max_objects
    # numbers (bbox, confidence) cannot be bounded by a token mask: the model leaves them out
    assert set(objects["items"]["properties"]) == {"label"}
    assert schema["properties"]["caption"]["maxLength"] == VlmSettings().vlm_caption_max_chars
    assert max_chars(schema) < 4000


def test_a_directory_without_a_model_is_a_clear_error_and_nothing_is_downloaded(
    tmp_path: Path,
) -> None:
    settings = VlmSettings(vlm_model_dir=str(tmp_path / "nothing-here"))
    with pytest.raises(ConfigError, match=r"holds no model .* never downloads"):
        Engine.load(settings, fillable_schema(settings))


@pytest.mark.gpu
async def test_on_the_gpu_answers_are_valid_too(model_dir: Path, no_compile: None) -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    settings = VlmSettings(vlm_model_dir=str(model_dir), vlm_device="cuda", **SHORT)
    model = VlmModel("vlm", settings)
    model.load()
    assert model.engine is not None
    assert model.engine.device == "cuda"
    kinds = ("noise", "stripes")
    answers = await asyncio.gather(
        *(model.infer_json(request(encoded(picture(64, 48, kind)))) for kind in kinds)
    )
    for answer in answers:
        assert CATALOG.violations(RESULTS, as_results(answer)) == []
