"""Utterances out of one device's words events: one result per utterance, the open one
kept in the state store, redeliveries, late events and other devices changing nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from loom.runtime.event import Event
from loom.runtime.state import MemoryStateStore
from loom.testing import FunctionHarness, assert_emitted
from tests.functions.reason.conftest import RESULT, iso, reasoning, said
from tests.functions.reason.fake_ollama import FakeOllama, echo

pytest.importorskip("ollama")


@pytest.fixture
def ollama() -> Iterator[FakeOllama]:
    with FakeOllama(echo).serve() as fake:
        yield fake


# One device's morning: a final segment; a partial then final; a partial with a 3 s
# pause inside it, then its final with one more word.
def _morning() -> list[Event]:
    return [
        said("phone", "a", 0, "let's move the stand-up to ten"),
        said("phone", "b", 10, "I'll book", final=False),
        said("phone", "b", 10, "I'll book the big room"),
        said("phone", "c", 20, "so we call Anna about the budget", final=False, pauses={4: 3.0}),
        said("phone", "c", 20, "so we call Anna about the budget tomorrow", pauses={4: 3.0}),
    ]


async def _feed(harness: FunctionHarness, events: list[Event]) -> list[list[Event]]:
    return [await harness.call(e) for e in events]


def _summaries(made: list[list[Event]]) -> list[str]:
    return [e.data["summary"] for out in made for e in out]


async def test_one_result_per_utterance(ollama: FakeOllama) -> None:
    events = _morning()
    async with reasoning(reason_ollama_url=ollama.url) as (harness, _):
        made = await _feed(harness, events)
    assert [len(out) for out in made] == [1, 0, 1, 1, 1]
    assert _summaries(made) == [
        "let's move the stand-up to ten",
        "I'll book the big room",
        "so we call Anna",  # ended by the 3 s pause, from the partial
        "about the budget tomorrow",  # the rest, ended by the final
    ]
    first, second, third, fourth = (out[0] for out in made if out)
    assert (first.data["window_start"], first.data["window_end"]) == (iso(0), iso(2.4))
    assert (third.data["window_start"], third.data["window_end"]) == (iso(20), iso(21.6))
    assert (fourth.data["window_start"], fourth.data["window_end"]) == (iso(24.6), iso(26.2))
    assert third.data["timestamp"] == third.data["window_end"]
    # inputs: the events the words came from; derived_from: the one that ended it
    assert [i["id"] for i in second.data["inputs"]] == [events[2].id]
    assert second.data["derived_from"]["id"] == events[2].id
    assert [i["id"] for i in fourth.data["inputs"]] == [events[4].id]
    assert {e.data["device_id"] for e in (first, second, third, fourth)} == {"phone"}
    assert all(e.data["model"] == {"name": "mistral-small3.2"} for e in (first, fourth))


async def test_the_open_utterance_is_in_the_state_store(ollama: FakeOllama) -> None:
    store = MemoryStateStore()
    events = _morning()
    async with reasoning(store, reason_ollama_url=ollama.url) as (harness, _):
        await _feed(harness, events[:4])
    # a new process (scaled to zero and back) goes on from the store
    async with reasoning(store, reason_ollama_url=ollama.url) as (harness, _):
        made = await harness.call(events[4])
    assert _summaries([made]) == ["about the budget tomorrow"]


async def test_the_last_event_again_makes_the_same_results(ollama: FakeOllama) -> None:
    store = MemoryStateStore()
    events = _morning()
    async with reasoning(store, reason_ollama_url=ollama.url) as (harness, _):
        await _feed(harness, events[:3])
        first = await harness.call(events[3])
        rows = dict(store.rows)
        again = await harness.call(events[3])  # the host crashed before acknowledging
        assert store.rows == rows
        assert [(e.id, e.data) for e in again] == [(e.id, e.data) for e in first]
        rest = await harness.call(events[4])
    assert _summaries([rest]) == ["about the budget tomorrow"]


async def test_late_and_older_events_change_nothing(ollama: FakeOllama) -> None:
    store = MemoryStateStore()
    events = _morning()
    async with reasoning(store, reason_ollama_url=ollama.url) as (harness, _):
        await _feed(harness, events[:4])
        state = await store.get("phone")
        older = [
            said("phone", "a", 0, "let's move the stand-up to ten"),  # a segment resent
            said("phone", "b", 10, "I'll book", final=False),  # an old partial, resent
            said("phone", "c", 20, "so we call", final=False),  # an older hypothesis
            said("phone", "c", 20, "so we call Anna about", final=False, pauses={4: 3.0}),
        ]
        for event in older:
            assert await harness.call(event) == []
            assert await store.get("phone") == state
        made = await harness.call(events[4])
    assert _summaries([made]) == ["about the budget tomorrow"]


async def test_two_devices_do_not_mix(ollama: FakeOllama) -> None:
    events = [
        said("phone", "p", 0, "where did I park", final=False),
        said("laptop", "l", 0.5, "the build is green again"),
        said("phone", "p", 0, "where did I park the car"),
        said("laptop", "m", 4, "ship it", final=False),
        said("phone", "q", 5, "near the station I think"),
    ]
    async with reasoning(reason_ollama_url=ollama.url, reason_min_utterance_words=1) as (
        harness,
        _,
    ):
        made = [e for out in await _feed(harness, events) for e in out]
    by_device: dict[str, list[Any]] = {}
    for event in made:
        by_device.setdefault(event.data["device_id"], []).append(event.data["summary"])
    assert by_device == {
        "laptop": ["the build is green again"],
        "phone": ["where did I park the car", "near the station I think"],
    }


async def test_long_speech_is_cut_and_short_utterances_make_nothing(ollama: FakeOllama) -> None:
    speech = said("phone", "s", 0, "one two three four five six seven eight nine ten")
    async with reasoning(reason_ollama_url=ollama.url, reason_max_utterance_words=4) as (
        harness,
        _,
    ):
        made = await harness.call(speech)
        short = await harness.call(said("phone", "t", 30, "uh okay"))
    # 4 + 4 words; the last two make an utterance below LOOM_REASON_MIN_UTTERANCE_WORDS (3)
    assert _summaries([made]) == ["one two three four", "five six seven eight"]
    assert len({e.id for e in made}) == 2
    assert short == []
    assert_emitted(made, RESULT, count=2)


async def test_an_utterance_is_cut_at_the_longest_duration(ollama: FakeOllama) -> None:
    speech = said("phone", "s", 0, "a b c d e f g h", word_seconds=1.0)
    async with reasoning(
        reason_ollama_url=ollama.url, reason_max_utterance_seconds=3, reason_min_utterance_words=1
    ) as (harness, _):
        made = await harness.call(speech)
    assert _summaries([made]) == ["a b c", "d e f", "g h"]


async def test_a_clock_that_went_back_starts_the_window_again(ollama: FakeOllama) -> None:
    async with reasoning(reason_ollama_url=ollama.url) as (harness, _):
        await harness.call(said("phone", "x", 3600, "it is late now"))
        made = await harness.call(said("phone", "y", 0, "good morning to you"))
    assert _summaries([made]) == ["good morning to you"]


async def test_segments_can_make_one_utterance_until_a_pause(ollama: FakeOllama) -> None:
    events = [
        said("phone", "a", 0, "so about the trip"),
        said("phone", "b", 2.5, "we leave on friday"),  # 0.9 s after the last word
        said("phone", "c", 10, "okay see you then"),  # 5.9 s later: the pause ends it
    ]
    async with reasoning(reason_ollama_url=ollama.url, reason_final_ends_utterance=False) as (
        harness,
        _,
    ):
        made = await _feed(harness, events)
    assert [len(out) for out in made] == [0, 0, 1]
    (result,) = made[2]
    assert result.data["summary"] == "so about the trip we leave on friday"
    assert [i["id"] for i in result.data["inputs"]] == [events[0].id, events[1].id]
    assert result.data["derived_from"]["id"] == events[2].id
