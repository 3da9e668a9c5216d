"""The reason function against a local server speaking Ollama's API: what a request
carries, documents, and what each way of failing becomes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from functions.reason.handler import handle, open_reason
from functions.reason.settings import ReasonSettings
from loom.catalog import default_catalog
from loom.errors import ConfigError
from loom.runtime.invoke import PoisonEvent
from loom.runtime.model_client import ModelRefused, ModelUnavailable
from loom.runtime.state import MemoryStateStore
from loom.testing import assert_emitted, example_event
from tests.functions.reason.conftest import RESULT, reasoning, said
from tests.functions.reason.fake_ollama import FakeOllama, echo, refused_url

pytest.importorskip("ollama")

WEB = "task.url.processed.web_archived"
DOCUMENTS = [
    "task.url.processed.twitter_archived",
    "task.url.processed.hackernews_archived",
    "task.url.processed.pdf_extracted",
    WEB,
]
VALID = {"context_type": "social", "summary": "Planning a meeting.", "entities": [],
         "confidence": 0.6}  # fmt: skip


def _answers(*answers: Any) -> FakeOllama:
    """A server answering ``answers`` in turn (the last one from then on)."""
    left = list(answers)

    def answer(request: dict[str, Any]) -> Any:
        now = left.pop(0) if len(left) > 1 else left[0]
        return json.dumps(now) if isinstance(now, dict) else now

    return FakeOllama(answer)


@pytest.fixture
def ollama() -> Iterator[FakeOllama]:
    with FakeOllama(echo).serve() as fake:
        yield fake


async def test_a_request_carries_the_model_the_schema_and_the_input(ollama: FakeOllama) -> None:
    async with reasoning(reason_ollama_url=ollama.url, reason_max_chars=300) as (harness, reason):
        made = await harness.call(said("phone", "a", 0, "let's move the stand-up to ten"))
        await harness.call(example_event(WEB, name="article-with-metadata"))
    (utterance, document) = ollama.requests
    assert utterance["model"] == "mistral-small3.2"
    assert utterance["stream"] is False
    assert utterance["format"] == reason.schema == document["format"]
    assert utterance["options"]["num_ctx"] == 8192
    assert utterance["options"]["num_predict"] == 1024
    # the schema is the catalog's, less what Loom fills, and bounded
    catalog = default_catalog().bundled_schema(RESULT)["properties"]
    schema = utterance["format"]
    assert set(schema["properties"]) == {"context_type", "summary", "entities", "confidence"}
    assert schema["properties"]["context_type"] == catalog["context_type"]
    assert schema["properties"]["summary"]["maxLength"] == 300
    assert schema["properties"]["entities"]["maxItems"] == 20
    assert schema["properties"]["entities"]["items"]["properties"]["name"]["maxLength"] == 300
    assert schema["additionalProperties"] is False
    # one system prompt per kind of input, each naming the fields
    system = [r["messages"][0] for r in ollama.requests]
    assert [m["role"] for m in system] == ["system", "system"]
    assert "utterance" in system[0]["content"]
    assert "archived" in system[1]["content"]
    assert all("context_type" in m["content"] for m in system)
    assert ollama.user_texts()[0].endswith("\n\nlet's move the stand-up to ten")
    (result,) = assert_emitted(made, RESULT, count=1)
    assert result.data["model"] == {"name": "mistral-small3.2"}
    assert default_catalog().violations(RESULT, result.data) == []


@pytest.mark.parametrize("kind", DOCUMENTS)
async def test_each_document_makes_one_result(ollama: FakeOllama, kind: str) -> None:
    async with reasoning(reason_ollama_url=ollama.url) as (harness, _):
        for example in default_catalog().examples(kind):
            if not example.valid:
                continue
            event = example_event(kind, name=example.path.stem)
            (result,) = assert_emitted(await harness.call(event), RESULT, count=1)
            data = result.data
            assert data["inputs"] == [{"type": kind, "source": event.source, "id": event.id}]
            assert data["derived_from"]["id"] == event.id
            assert data["window_start"] == data["window_end"] == event.data["timestamp"]
            assert data["device_id"] == event.data.get("device_id", "external")
            assert default_catalog().violations(RESULT, data) == []


async def test_a_long_document_is_cut_to_its_budget(ollama: FakeOllama) -> None:
    event = example_event(WEB, name="article-with-metadata")
    text = "word " * 20_000
    event = type(event)(type=WEB, data={**event.data, "text": text, "text_chars": len(text)},
                        source=event.source)  # fmt: skip
    async with reasoning(reason_ollama_url=ollama.url, reason_document_max_chars=1000) as (
        harness,
        _,
    ):
        await harness.call(event)
    (sent,) = ollama.user_texts()
    assert len(sent) <= 1000
    assert sent.startswith("Archived web page:\ntitle: ")
    assert sent.endswith(f" of {len(text.strip())} characters]")


async def test_a_document_without_text_is_not_asked_about(ollama: FakeOllama) -> None:
    event = example_event(WEB, name="minimal")
    event = type(event)(type=WEB, data={**event.data, "text": "", "text_chars": 0},
                        source=event.source)  # fmt: skip
    event.data.pop("title", None)
    async with reasoning(reason_ollama_url=ollama.url) as (harness, _):
        assert await harness.call(event) == []
    assert ollama.requests == []


@pytest.mark.parametrize(
    ("status", "error", "expected", "says"),
    [
        (404, 'model "mistral-small3.2" not found, try pulling it first', ModelUnavailable,
         "ollama pull mistral-small3.2"),
        (500, "llama runner process has terminated", ModelUnavailable, "answered 500"),
        (503, "server busy", ModelUnavailable, "answered 503"),
        (400, "invalid format", ModelRefused, "refused the request \\(400\\)"),
    ],
)  # fmt: skip
async def test_server_errors(status: int, error: str, expected: type, says: str) -> None:
    with FakeOllama(lambda _: (status, {"error": error})).serve() as fake:
        async with reasoning(reason_ollama_url=fake.url) as (harness, _):
            with pytest.raises(expected, match=says):
                await harness.call(said("phone", "a", 0, "let's move the stand-up to ten"))
    assert issubclass(ModelRefused, PoisonEvent)  # a 4xx is a dead letter; the rest retried


async def test_a_server_that_is_down_is_retried_later() -> None:
    async with reasoning(reason_ollama_url=refused_url()) as (harness, _):
        with pytest.raises(ModelUnavailable, match="unreachable"):
            await harness.call(said("phone", "a", 0, "let's move the stand-up to ten"))


async def test_a_slow_server_times_out() -> None:
    with FakeOllama(echo).serve() as fake:
        fake.delay = 1.0
        async with reasoning(reason_ollama_url=fake.url, reason_timeout_seconds=0.2) as (
            harness,
            _,
        ):
            with pytest.raises(ModelUnavailable, match="did not answer in 0 s"):
                await harness.call(said("phone", "a", 0, "let's move the stand-up to ten"))


async def test_a_failed_call_leaves_the_utterance_to_the_redelivery() -> None:
    store = MemoryStateStore()
    event = said("phone", "a", 0, "let's move the stand-up to ten")
    with FakeOllama(lambda _: (500, {"error": "out of memory"})).serve() as fake:
        async with reasoning(store, reason_ollama_url=fake.url) as (harness, _):
            with pytest.raises(ModelUnavailable):
                await harness.call(event)
    with FakeOllama(echo).serve() as fake:
        async with reasoning(store, reason_ollama_url=fake.url) as (harness, _):
            made = await harness.call(event)
    assert [e.data["summary"] for e in made] == ["let's move the stand-up to ten"]


async def test_an_answer_that_ignores_the_format_is_asked_again() -> None:
    with _answers("Sure! The person is planning a meeting.", VALID).serve() as fake:
        async with reasoning(reason_ollama_url=fake.url) as (harness, _):
            made = await harness.call(said("phone", "a", 0, "let's move the stand-up to ten"))
    assert [e.data["summary"] for e in made] == ["Planning a meeting."]
    first, second = fake.requests
    assert second["messages"][:2] == first["messages"]
    assert second["messages"][2]["content"] == "Sure! The person is planning a meeting."
    assert "not JSON" in second["messages"][3]["content"]


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ({**VALID, "context_type": "vibes"}, "'/context_type': 'vibes' is not one of"),
        ({**VALID, "confidence": 1.7}, "'/confidence': 1.7 is greater than"),
        ({**VALID, "mood": "happy"}, "Additional properties are not allowed"),
        ("[]", "a JSON list, not an object"),
    ],
)
async def test_an_answer_that_breaks_the_schema_twice_is_a_dead_letter(
    answer: Any, reason: str
) -> None:
    with _answers(answer).serve() as fake:
        async with reasoning(reason_ollama_url=fake.url) as (harness, _):
            with pytest.raises(PoisonEvent, match="answered twice without following the schema"):
                await harness.call(said("phone", "a", 0, "let's move the stand-up to ten"))
            with pytest.raises(PoisonEvent, match=reason.replace("(", "\\(")):
                await harness.call(said("phone", "b", 10, "and the budget as well"))
    assert len(fake.requests) == 4  # each event: once, and once again


async def test_an_answer_cut_at_the_token_limit_is_asked_again() -> None:
    with _answers('{"context_type": "summary", "summ').serve() as fake:
        fake.done_reason = "length"
        async with reasoning(reason_ollama_url=fake.url, reason_max_tokens=64) as (harness, _):
            with pytest.raises(PoisonEvent, match="cut at 64 tokens"):
                await harness.call(said("phone", "a", 0, "let's move the stand-up to ten"))
    assert len(fake.requests) == 2


async def test_the_in_process_backend_needs_a_model_directory() -> None:
    settings = ReasonSettings(reason_backend="transformers")
    with pytest.raises(ConfigError, match="LOOM_REASON_MODEL_DIR"):
        async with open_reason(settings, states=MemoryStateStore()):
            pass
    assert handle.spec.ordered
    assert handle.spec.retries == 10
