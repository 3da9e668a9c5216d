"""The sites that get archives of their own: X/Twitter posts and Hacker News items.

Recognising their URLs, and reading the answers of the APIs they are asked through:
an oEmbed endpoint for posts (``publish.twitter.com/oembed`` shape) and the Hacker News
Firebase API (``/v0/item/<id>.json``).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

__all__ = [
    "HN_HOSTS",
    "TWITTER_HOSTS",
    "Tweet",
    "TweetRef",
    "hn_item_id",
    "hn_text",
    "snowflake_time",
    "tweet_from_oembed",
    "tweet_ref",
]

TWITTER_HOSTS = frozenset({"x.com", "www.x.com", "mobile.x.com", "twitter.com",
                           "www.twitter.com", "mobile.twitter.com"})  # fmt: skip
HN_HOSTS = frozenset({"news.ycombinator.com"})
HANDLE = re.compile(r"^[A-Za-z0-9_]{1,15}$")
_STATUS = re.compile(r"^/(?P<handle>[A-Za-z0-9_]{1,15}|i/web)/status(?:es)?/(?P<id>[0-9]{1,25})"
                     r"(?:/.*)?$")  # fmt: skip
_TWITTER_EPOCH_MS = 1288834974657
_FIRST_SNOWFLAKE = 29_700_859_247_125_504  # posts before November 2010 have other ids


@dataclass(frozen=True)
class TweetRef:
    """A post named by a status URL; ``handle`` is None for ``/i/web/status/<id>``."""

    id: str
    handle: str | None

    @property
    def permalink(self) -> str:
        return f"https://x.com/{self.handle or 'i/web'}/status/{self.id}"


@dataclass(frozen=True)
class Tweet:
    handle: str
    text: str
    name: str | None = None
    created_at: str | None = None


def tweet_ref(url: httpx.URL) -> TweetRef | None:
    """The post a URL such as ``https://x.com/<handle>/status/<id>`` names, if it does."""
    if url.host.lower() not in TWITTER_HOSTS:
        return None
    found = _STATUS.match(url.path)
    if found is None:
        return None
    handle = found["handle"]
    return TweetRef(found["id"], None if handle in ("i/web", "i") else handle)


def hn_item_id(url: httpx.URL) -> int | None:
    """N of ``https://news.ycombinator.com/item?id=N``, if that is what ``url`` is."""
    if url.host.lower() not in HN_HOSTS or url.path != "/item":
        return None
    value = url.params.get("id", "")
    return int(value) if value.isdigit() and 0 < int(value) < 2**53 else None


def snowflake_time(tweet_id: str) -> str | None:
    """When a post was made, from its id (ids are time-ordered since November 2010)."""
    number = int(tweet_id)
    if number < _FIRST_SNOWFLAKE:
        return None
    moment = datetime.fromtimestamp(((number >> 22) + _TWITTER_EPOCH_MS) / 1000, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _handle_of(author_url: Any) -> str | None:
    if not isinstance(author_url, str):
        return None
    last = author_url.rstrip("/").rsplit("/", 1)[-1]
    return last if HANDLE.match(last) else None


def _blockquote_text(markup: str) -> str:
    """The post's text: the first paragraph of the embed's blockquote, links as shown."""
    import lxml.html  # type: ignore[import-untyped]
    from lxml.etree import ParserError  # type: ignore[import-untyped]

    try:
        root = lxml.html.fragment_fromstring(markup, create_parent="div")
    except (ParserError, ValueError):
        return ""
    paragraphs = root.xpath(".//blockquote//p") or root.xpath(".//p")
    if not paragraphs:
        return ""
    paragraph = paragraphs[0]
    for br in paragraph.iter("br"):
        br.tail = "\n" + (br.tail or "")
    return str(paragraph.text_content()).strip()


def tweet_from_oembed(answer: Any, ref: TweetRef) -> Tweet | None:
    """A post out of an oEmbed answer (``author_name``, ``author_url``, ``html``), or None
    when the answer is not one."""
    if not isinstance(answer, dict) or not isinstance(answer.get("html"), str):
        return None
    handle = _handle_of(answer.get("author_url")) or ref.handle
    if handle is None:
        return None
    name = answer.get("author_name")
    return Tweet(
        handle=handle,
        text=_blockquote_text(answer["html"])[:25000],
        name=name.strip()[:100] if isinstance(name, str) else None,
        created_at=snowflake_time(ref.id),
    )


_BREAKS = re.compile(r"<\s*(?:p|br)\s*/?>", re.IGNORECASE)
_TAGS = re.compile(r"<[^>]+>")


def hn_text(markup: str) -> str:
    """Plain text of an HN item's ``text`` (HN's small HTML: ``<p>``, ``<a>``, ``<i>``,
    ``<pre><code>``), paragraphs kept."""
    text = _TAGS.sub("", _BREAKS.sub("\n\n", markup))
    return html.unescape(text).strip()
