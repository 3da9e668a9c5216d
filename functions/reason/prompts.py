"""The prompts: one short system prompt per kind of input, and the input itself.

Both system prompts end with the answer's fields as the schema describes them
(:func:`~functions.reason.schema.field_guide`): the backends constrain the answer to
that schema as well, but a model that is told the fields in words fills them better.

- **Utterance** (``media.text.transcribed.words``): what a device heard, as a speech
  recogniser wrote it down. The model says what it tells of the person's context
  (activity, place, company, mood), naming only what is said or clearly implied.
- **Document** (``task.url.processed.*``): a post, Hacker News item, PDF or web page the
  person archived. The model summarises what it is about and names its entities;
  ``context_type`` is ``summary`` unless the document is about the person's own life.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "DOCUMENTS",
    "DOCUMENT_SYSTEM",
    "UTTERANCE_SYSTEM",
    "Document",
    "Message",
    "document_prompt",
    "utterance_prompt",
]

Message = dict[str, str]

UTTERANCE_SYSTEM = """\
You help a person understand their own days from what their devices recorded.
You get one utterance: words a device of theirs heard, written down by a speech \
recogniser (it mishears words; the speaker may be the person or someone near them).
Say what the utterance tells about the person's context: what they are doing, where, \
with whom, how they feel, or else what it is about.
Use only what the words say or clearly imply. Never invent names, places or facts. \
If the words tell little, say so and give a low confidence.
Answer with one JSON object and nothing else. Its fields:
{guide}"""

DOCUMENT_SYSTEM = """\
You help a person keep track of what they read and saved.
You get one document they archived (a post, a Hacker News item, a PDF or a web page); \
a long one is cut short.
Summarise what it is about in a few plain sentences and list the people, \
organizations, places and topics it is about.
Use only what the document says. context_type is "summary" unless the document is \
plainly about the person's own activity, location, social life or mood.
Answer with one JSON object and nothing else. Its fields:
{guide}"""


@dataclass(frozen=True)
class Document:
    """How an archived document is shown to the model: a label, header fields, its text."""

    label: str
    headers: tuple[str, ...]
    text: str


DOCUMENTS = {
    "task.url.processed.twitter_archived": Document(
        "X/Twitter post", ("author_name", "author_handle", "created_at", "url"), "text"
    ),
    "task.url.processed.hackernews_archived": Document(
        "Hacker News item",
        ("title", "by", "url", "article_url", "points", "comments_count"),
        "article_text",
    ),
    "task.url.processed.pdf_extracted": Document(
        "PDF", ("title", "author", "page_count", "url", "summary"), "text"
    ),
    "task.url.processed.web_archived": Document(
        "web page", ("title", "site_name", "author", "published", "final_url"), "text"
    ),
}


def utterance_prompt(
    guide: str, text: str, *, start: str, end: str, seconds: float, language: str
) -> list[Message]:
    """The messages for one utterance heard from ``start`` to ``end``."""
    heard = f"Heard from {start} to {end} ({seconds:.0f} s), language {language}:\n\n{text}"
    return [{"role": "system", "content": UTTERANCE_SYSTEM.format(guide=guide)},
            {"role": "user", "content": heard}]  # fmt: skip


def document_prompt(
    guide: str, type_: str, data: dict[str, Any], max_chars: int
) -> list[Message] | None:
    """The messages for one archived document, its text cut so that headers and text
    together stay within ``max_chars``; None for a document with no text at all."""
    document = DOCUMENTS[type_]
    headers = [f"{name}: {data[name]}" for name in document.headers
               if data.get(name) not in (None, "")]  # fmt: skip
    text = str(data.get(document.text) or "").strip()
    if not text and not any(data.get(k) for k in ("title", "summary")):
        return None
    head = f"Archived {document.label}:\n" + "\n".join(headers)
    room = max(0, max_chars - len(head) - 2)
    if len(text) > room:
        note = f"\n[cut: the first {{}} of {len(text)} characters]"
        keep = max(0, room - len(note.format(len(text))))
        cut = text.rfind(" ", 0, keep + 1)  # at a word's end, if one is near
        keep = cut if cut > keep * 0.9 else keep
        text = text[:keep].rstrip() + note.format(keep)
    body = f"{head}\n\n{text}" if text else head
    return [{"role": "system", "content": DOCUMENT_SYSTEM.format(guide=guide)},
            {"role": "user", "content": body}]  # fmt: skip
