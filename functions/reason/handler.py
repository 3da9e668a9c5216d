"""``reason``: what a person's utterances and archived documents tell, by a language
model (Mistral Small 3.2 on Ollama by default) → ``analysis.inferred_context.mistral_results``.

- **Utterances.** ``media.text.transcribed.words`` events of one device are cut into
  utterances (:mod:`functions.reason.window`: a pause longer than
  ``LOOM_REASON_PAUSE_SECONDS``, ``LOOM_REASON_MAX_UTTERANCE_SECONDS`` or ``…_WORDS``,
  or a final segment ends one, unless ``LOOM_REASON_FINAL_ENDS_UTTERANCE=false``). The
  open utterance is kept per device in the state store (ordered delivery), never only
  in memory; each utterance that ends with at least ``LOOM_REASON_MIN_UTTERANCE_WORDS``
  words makes one result. Its window is the
  utterance's first word to its last, ``inputs`` the words events it was made of,
  ``derived_from`` the event that ended it.
- **Documents.** Each ``task.url.processed.*`` event makes one result, its text cut to
  ``LOOM_REASON_DOCUMENT_MAX_CHARS``; its window is the document's ``timestamp``, its
  device the document's (else ``LOOM_REASON_DOCUMENT_DEVICE``).

The model writes the fields of :func:`~functions.reason.schema.answer_schema` (derived
from the catalog); Loom adds ids, times, device, sources and the model's name. The
state is saved before the model is asked: when the model fails and the event comes
again, the state store gives the state from before it, so the same utterances are asked
again and the results get the same ids. A model server that is down is retried
(``retries=10``: 1 s doubling, about 17 min, for a GPU server that is starting); an
answer that twice breaks the schema is a dead letter with the reason.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator

from functions.reason.backends import ReasoningBackend, ask, open_backend
from functions.reason.prompts import DOCUMENTS, document_prompt, utterance_prompt
from functions.reason.schema import RESULT, answer_schema, field_guide
from functions.reason.settings import ReasonSettings, reason_settings
from functions.reason.window import Heard, Limits, Utterance, advance, iso
from loom.catalog import default_catalog
from loom.runtime.context import Context
from loom.runtime.event import Event
from loom.runtime.registry import function
from loom.runtime.state import StateStore, open_state_store
from loom.settings import LoomSettings

__all__ = ["RESULT", "WORDS", "Reason", "handle", "open_reason"]

WORDS = "media.text.transcribed.words"
_VERSION = default_catalog()[RESULT].schema_version


@dataclass(frozen=True)
class Reason:
    """What the handler keeps between events (``ctx.state``)."""

    config: ReasonSettings
    states: StateStore
    backend: ReasoningBackend
    schema: dict[str, Any]  # what the model fills
    validator: Draft202012Validator
    guide: str  # the schema's fields, for the prompts

    @property
    def limits(self) -> Limits:
        c = self.config
        return Limits(pause_ms=round(c.reason_pause_seconds * 1000),
                      max_ms=round(c.reason_max_utterance_seconds * 1000),
                      max_words=c.reason_max_utterance_words,
                      reset_ms=round(c.reason_reset_seconds * 1000),
                      final_ends=c.reason_final_ends_utterance)  # fmt: skip


@asynccontextmanager
async def open_reason(
    settings: LoomSettings, *, states: StateStore | None = None
) -> AsyncIterator[Reason]:
    """Opens the backend and the per-device state (PostgreSQL unless ``states`` is given)."""
    config = reason_settings(settings)
    config.check()
    schema = answer_schema(default_catalog(), max_chars=config.reason_max_chars,
                           max_items=config.reason_max_items)  # fmt: skip
    validator = Draft202012Validator(schema)
    async with AsyncExitStack() as resources:
        backend = await resources.enter_async_context(open_backend(config))
        store: StateStore
        if states is not None:
            store = states
        else:
            store = await resources.enter_async_context(open_state_store(settings, "reason"))
        yield Reason(config, store, backend, schema, validator, field_guide(schema))


@function(
    consumes=[WORDS, *DOCUMENTS],
    produces=[RESULT],
    ordered=True,
    lifespan=open_reason,
    retries=10,  # a model server that is starting (a GPU node, a model loading) is waited for
)
async def handle(event: Event, ctx: Context) -> list[Event]:
    """Context inferred by a language model from utterances and archived documents."""
    reason: Reason = ctx.state
    if event.type == WORDS:
        return await _utterances(event, ctx, reason)
    return await _document(event, ctx, reason)


async def _utterances(event: Event, ctx: Context, reason: Reason) -> list[Event]:
    data: dict[str, Any] = event.data
    device = str(data["device_id"])
    heard = Heard.from_data(data, (event.type, event.source, event.id))
    async with reason.states.transition(device, event.id) as step:
        moved = advance(step.value, heard, reason.limits)
        step.value = moved.state
    if moved.ignored or moved.restarted:
        ctx.log.debug("reason.words", ignored=moved.ignored, restarted=moved.restarted,
                      segment=heard.segment)  # fmt: skip
    made = []
    for index, utterance in enumerate(moved.closed):
        if len(utterance.words) < reason.config.reason_min_utterance_words:
            ctx.log.debug("reason.utterance_too_short", words=len(utterance.words))
            continue
        made.append(await _utterance_result(event, ctx, reason, device, utterance, index))
    return made


async def _utterance_result(
    event: Event, ctx: Context, reason: Reason, device: str, utterance: Utterance, index: int
) -> Event:
    start, end = iso(utterance.start_ms), iso(utterance.end_ms)
    prompt = utterance_prompt(reason.guide, utterance.text, start=start, end=end,
                              seconds=(utterance.end_ms - utterance.start_ms) / 1000,
                              language=utterance.language)  # fmt: skip
    answer = await ask(reason.backend, prompt, reason.schema, reason.validator)
    inputs = [{"type": t, "source": s, "id": i} for t, s, i in utterance.refs]
    return event.derive(RESULT, _result(reason, device, end, start, end, answer, inputs),
                        source=ctx.source, index=index)  # fmt: skip


async def _document(event: Event, ctx: Context, reason: Reason) -> list[Event]:
    data: dict[str, Any] = event.data
    prompt = document_prompt(
        reason.guide, event.type, data, reason.config.reason_document_max_chars
    )
    if prompt is None:
        ctx.log.debug("reason.document_without_text")
        return []
    answer = await ask(reason.backend, prompt, reason.schema, reason.validator)
    device = data.get("device_id") or event.device_id or reason.config.reason_document_device
    when = str(data["timestamp"])
    inputs = [{"type": event.type, "source": event.source, "id": event.id}]
    return [event.derive(RESULT, _result(reason, device, when, when, when, answer, inputs),
                         source=ctx.source)]  # fmt: skip


def _result(
    reason: Reason, device: str, timestamp: str, start: str, end: str,
    answer: dict[str, Any], inputs: list[dict[str, str]],
) -> dict[str, Any]:  # fmt: skip
    return {
        "schema_version": _VERSION,
        "device_id": device,
        "timestamp": timestamp,
        **answer,
        "window_start": start,
        "window_end": end,
        "inputs": inputs,
        "model": {"name": reason.backend.name},
    }
