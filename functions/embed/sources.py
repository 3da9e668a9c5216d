"""What is embedded of each input type, and what its embedded event carries over.

The text is chosen per type (a calendar event's title, description and location; an
email's subject and text body; a Hacker News item's title and page text). The fields
carried over are read from the catalog: those the output's schema shares with the input's
(the item's account, time and identifiers), less those that describe the message itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from loom.catalog import Catalog, default_catalog

__all__ = ["SOURCES", "Source", "sources"]

CALENDAR, CALENDAR_EMBEDDED = "external.calendar.enriched", "external.calendar.embedded"
EMAIL, EMAIL_EMBEDDED = "external.email.parsed", "external.email.embedded"
HACKERNEWS, HACKERNEWS_EMBEDDED = (
    "external.hackernews.content_fetched",
    "external.hackernews.embedded",
)
# The input's own, never the output's: its version, its message id, what it came from.
_NOT_CARRIED = frozenset({"schema_version", "message_id", "derived_from"})


@dataclass(frozen=True)
class Source:
    """An input type: the type it becomes, its text, and the fields carried over."""

    output: str
    text: Callable[[Mapping[str, Any]], str]
    carried: tuple[str, ...]
    counts_chars: bool  # the output says how many characters were embedded (text_chars)


def _join(*parts: object) -> str:
    return "\n".join(p.strip() for p in parts if isinstance(p, str) and p.strip())


def _calendar_text(data: Mapping[str, Any]) -> str:
    place = data.get("location_resolved") or {}
    return _join(
        data.get("summary"),
        data.get("description"),
        data.get("location") or place.get("display_name"),
    )


def _email_text(data: Mapping[str, Any]) -> str:
    return _join(data.get("subject"), data.get("text_body"))


def _hackernews_text(data: Mapping[str, Any]) -> str:
    return _join(data.get("title"), data.get("text"))


def _source(
    catalog: Catalog, input_: str, output: str, text: Callable[[Mapping[str, Any]], str]
) -> Source:
    given = catalog.bundled_schema(input_).get("properties", {})
    made = catalog.bundled_schema(output).get("properties", {})
    carried = tuple(name for name in made if name in given and name not in _NOT_CARRIED)
    return Source(output, text, carried, counts_chars="text_chars" in made)


def sources(catalog: Catalog | None = None) -> dict[str, Source]:
    """Each input type the function consumes, by name."""
    catalog = catalog or default_catalog()
    return {
        CALENDAR: _source(catalog, CALENDAR, CALENDAR_EMBEDDED, _calendar_text),
        EMAIL: _source(catalog, EMAIL, EMAIL_EMBEDDED, _email_text),
        HACKERNEWS: _source(catalog, HACKERNEWS, HACKERNEWS_EMBEDDED, _hackernews_text),
    }


SOURCES = sources()
