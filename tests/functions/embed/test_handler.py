"""The embed function through the harness, on the golden examples of its inputs: one
valid ``*.embedded`` event per item, carrying the item's identifiers, the same event
again on a redelivery, nothing for an item without text, and concurrent deliveries
sharing forward passes."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from functions.embed.batcher import Batcher
from functions.embed.encoder import SentenceEncoder
from functions.embed.handler import Embedder, as_json, handle
from functions.embed.settings import EmbedSettings
from functions.embed.sources import SOURCES
from loom.catalog import default_catalog
from loom.errors import ConfigError
from loom.runtime.event import Event
from loom.runtime.invoke import PoisonEvent
from loom.testing import FunctionHarness, assert_emitted, example_event
from tests.functions.embed.conftest import TINY, write_tiny_model

INPUTS = {
    "external.calendar.enriched": ("external.calendar.embedded", ("calendar_id", "event_uid")),
    "external.email.parsed": ("external.email.embedded", ("mailbox", "message_uid")),
    "external.hackernews.content_fetched": ("external.hackernews.embedded", ("item_id",)),
}
EXAMPLES = [(t, e.path.stem) for t in INPUTS for e in default_catalog().examples(t) if e.valid]


@pytest.fixture
def harness(minilm: SentenceEncoder) -> FunctionHarness:
    """The function with the session's model (what its lifespan makes, without the wait)."""
    config = EmbedSettings()
    embedder = Embedder(config, minilm, Batcher(minilm.embed_tokens, config.embed_max_batch))
    return FunctionHarness(handle, settings=config, state=embedder)


def _event(type_: str, name: str | None = None, **changes: Any) -> Event:
    event = example_event(type_, name=name)
    return dataclasses.replace(event, data={**event.data, **changes})


@pytest.mark.parametrize(("type_", "name"), EXAMPLES)
async def test_each_golden_example_is_embedded(
    harness: FunctionHarness, type_: str, name: str
) -> None:
    event = example_event(type_, name=name)
    output, keys = INPUTS[type_]
    [made] = assert_emitted(await harness.call(event), output, count=1)  # schema-checked
    data = made.data
    for key in ("account", "timestamp", *keys):
        assert data[key] == event.data[key]
    assert data["derived_from"] == {"type": type_, "source": event.source, "id": event.id}
    assert data["schema_version"] == default_catalog()[output].schema_version
    embedding = data["embedding"]
    assert embedding["model"] == "all-MiniLM-L6-v2"
    assert embedding["dimensions"] == len(embedding["vector"]) == 384
    assert abs(np.linalg.norm(embedding["vector"]) - 1) < 1e-5
    if type_ == "external.email.parsed":
        assert data["text_chars"] == len(
            f"{event.data['subject']}\n{event.data['text_body']}".strip()
        )


async def test_a_redelivery_makes_the_same_event(harness: FunctionHarness) -> None:
    event = example_event("external.hackernews.content_fetched")
    [first], [again] = await harness.call(event), await harness.call(event)
    assert first.id == again.id
    assert first.data == again.data


async def test_the_text_is_what_the_item_is_about(harness: FunctionHarness) -> None:
    """A calendar event's vector is its title and place; an email's, subject and body."""
    [meeting] = await harness.call(_event("external.calendar.enriched", "meeting-with-location"))
    [planning] = await harness.call(
        _event(
            "external.calendar.enriched",
            "meeting-with-location",
            location_resolved={"latitude": 0, "longitude": 0, "display_name": "Rome"},
        )
    )
    assert meeting.data["embedding"] != planning.data["embedding"]  # the place counts
    [cats] = await harness.call(
        _event("external.email.parsed", subject="Cats", text_body="The cat sits on the mat")
    )
    [rug] = await harness.call(
        _event(
            "external.hackernews.content_fetched", title="Cats", text="A cat is sitting on a rug"
        )
    )
    [money] = await harness.call(
        _event(
            "external.hackernews.content_fetched",
            title="Earnings",
            text="Quarterly revenue rose 4%",
        )
    )
    cat, rug_, money_ = (np.array(e.data["embedding"]["vector"]) for e in (cats, rug, money))
    assert cat @ rug_ > cat @ money_ + 0.3


@pytest.mark.parametrize(
    ("type_", "changes"),
    [
        ("external.email.parsed", {"subject": "", "text_body": " \n\t "}),
        ("external.hackernews.content_fetched", {"title": "", "text": ""}),
        ("external.calendar.enriched", {"summary": "\u200b\x00"}),  # only what BERT drops
    ],
)
async def test_an_item_without_text_makes_no_event(
    harness: FunctionHarness, type_: str, changes: dict[str, str]
) -> None:
    assert (
        await harness.call(
            _event(type_, "minimal-all-day" if "calendar" in type_ else None, **changes)
        )
        == []
    )


async def test_a_long_email_is_cut_and_says_how_much_was_embedded(harness: FunctionHarness) -> None:
    body = "Minutes of the meeting. " * 5_000
    [made] = await harness.call(_event("external.email.parsed", subject="Minutes", text_body=body))
    assert 0 < made.data["text_chars"] < 2_000 < len(body)
    [head] = await harness.call(
        _event(
            "external.email.parsed",
            subject="Minutes",
            text_body=body[: made.data["text_chars"] - 8],
        )
    )
    assert made.data["embedding"]["vector"] == head.data["embedding"]["vector"]


async def test_concurrent_deliveries_share_forward_passes() -> None:
    texts = [f"Item {i}: " + "notes on the planning meeting " * (i % 7 + 1) for i in range(24)]
    events = [
        _event("external.hackernews.content_fetched", title=f"t{i}", text=text, item_id=i + 1)
        for i, text in enumerate(texts)
    ]
    async with FunctionHarness(handle, settings=EmbedSettings()) as harness:
        together = await asyncio.gather(*(harness.call(e) for e in events))
        batcher = harness.state.batcher
        assert batcher.stats.largest > 1
        assert batcher.stats.texts == len(events)
        for event, [made] in zip(events, together, strict=True):
            [alone] = await harness.call(event)
            assert made.data["item_id"] == event.data["item_id"]
            assert (
                np.abs(
                    np.subtract(made.data["embedding"]["vector"], alone.data["embedding"]["vector"])
                ).max()
                < 1e-5
            )


async def test_the_model_and_its_name_come_from_settings(tmp_path: Path) -> None:
    model = write_tiny_model(tmp_path / "tiny-bert")
    settings = EmbedSettings(embed_model_path=model, embed_model_name="tiny-bert")
    async with FunctionHarness(handle, settings=settings) as harness:
        [made] = await harness.call(example_event("external.hackernews.content_fetched"))
    embedding = made.data["embedding"]
    assert embedding["model"] == "tiny-bert"
    assert embedding["dimensions"] == len(embedding["vector"]) == TINY["hidden_size"]


async def test_a_model_that_cannot_load_fails_at_start(tmp_path: Path) -> None:
    settings = EmbedSettings(embed_model_path=tmp_path / "missing")
    with pytest.raises(ConfigError, match="does not exist"):
        async with FunctionHarness(handle, settings=settings):
            pass


def test_settings_come_from_loom_embed_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOM_EMBED_MODEL_NAME", "my-minilm")
    monkeypatch.setenv("LOOM_EMBED_MAX_BATCH", "8")
    settings = EmbedSettings()
    assert (settings.embed_model_name, settings.embed_max_batch) == ("my-minilm", 8)
    assert settings.embed_model_path is None
    assert settings.embed_max_tokens is None


def test_it_consumes_each_source_and_produces_its_embedded_type() -> None:
    spec = handle.spec
    assert set(spec.consumes) == set(INPUTS) == set(SOURCES)
    assert set(spec.produces) == {output for output, _ in INPUTS.values()}
    for type_, (output, keys) in INPUTS.items():
        assert SOURCES[type_].output == output
        assert set(keys) <= set(SOURCES[type_].carried)


@pytest.mark.parametrize("type_", INPUTS)
async def test_an_input_that_breaks_its_schema_is_a_dead_letter(
    harness: FunctionHarness, type_: str
) -> None:
    with pytest.raises(PoisonEvent, match="breaks its schema"):
        await harness.call(example_event(type_, valid=False))


def test_each_type_embeds_its_title_body_and_place() -> None:
    calendar = SOURCES["external.calendar.enriched"].text
    resolved = {"latitude": 52.5, "longitude": 13.4, "display_name": "Torstraße 1, Berlin"}
    full = {"summary": "Weekly planning", "description": " Agenda in the doc. ",
            "location": "Room 3.14", "location_resolved": resolved}  # fmt: skip
    assert calendar(full) == "Weekly planning\nAgenda in the doc.\nRoom 3.14"
    assert calendar({"summary": "Planning", "location_resolved": resolved}) == (
        "Planning\nTorstraße 1, Berlin"
    )
    email = SOURCES["external.email.parsed"].text
    assert (
        email({"subject": "Re: slides", "text_body": "Looks good.\n"}) == "Re: slides\nLooks good."
    )
    assert email({"subject": "", "text_body": "Only a body"}) == "Only a body"
    page = SOURCES["external.hackernews.content_fetched"].text
    assert (
        page({"title": "Ask HN: logs?", "text": "I tried paper."})
        == "Ask HN: logs?\nI tried paper."
    )


def test_vector_values_read_back_as_the_same_float32() -> None:
    vector = np.random.default_rng(1).standard_normal(384).astype(np.float32) / 20
    assert np.array_equal(np.array(as_json(vector), np.float32), vector)
