"""``hackernews``: a liked item in, the readable text of what it links to out.

An item with a link: the linked page is fetched (public addresses only, size and time
limits, each redirect checked) and its main text extracted (trafilatura for web pages,
pypdf for PDFs). An Ask HN or other text post: the post's own text, from the API.

A page that can never be read (404, an image, too large, a host that does not exist)
still gives ``content_fetched``, with an empty text and the status and content type
that say why, so every liked item has its content event (its title can still be
embedded). A link to an address that is not public is a dead letter. Timeouts,
refused connections, 5xx and 429 raise, and the runtime tries again later.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from functions.hackernews.content import post_text, readable
from functions.hackernews.settings import HackerNewsSettings, hackernews_settings
from functions.hackernews.web import PageFetcher, TryLater
from loom.runtime.context import Context
from loom.runtime.event import Event
from loom.runtime.registry import function
from loom.settings import LoomSettings

__all__ = ["Reader", "handle", "open_reader"]

LIKED = "external.hackernews.liked"
CONTENT = "external.hackernews.content_fetched"
# the schema's pattern of a MIME type; a server's odd header is left out rather than kept
_MIME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*(\s*;.*)?$")


@dataclass
class Reader:
    """What the handler keeps between events (``ctx.state``)."""

    config: HackerNewsSettings
    pages: PageFetcher
    api: httpx.AsyncClient

    async def post(self, item_id: int) -> dict[str, Any] | None:
        """The API's item; None if it has none (deleted); TryLater if the API fails."""
        url = f"{self.config.hackernews_api_url}/v0/item/{item_id}.json"
        try:
            response = await self.api.get(url)
        except httpx.TransportError as exc:
            raise TryLater(f"{url}: {type(exc).__name__}: {exc}") from None
        if response.status_code >= 500 or response.status_code == 429:
            raise TryLater(f"{url} answered {response.status_code}; trying again later")
        if response.status_code != 200:
            return None
        try:
            body = response.json()
        except ValueError:
            return None
        return body if isinstance(body, dict) else None


@asynccontextmanager
async def open_reader(settings: LoomSettings) -> AsyncIterator[Reader]:
    """The clients of linked pages and of the API, with the limits of the settings."""
    config = hackernews_settings(settings)
    pages = PageFetcher(
        user_agent=config.hackernews_user_agent,
        max_bytes=config.hackernews_fetch_max_bytes,
        timeout=config.hackernews_fetch_timeout_seconds,
        max_redirects=config.hackernews_fetch_max_redirects,
        allow_private=config.hackernews_allow_private,
    )
    api = httpx.AsyncClient(timeout=config.hackernews_timeout_seconds,
                            headers={"User-Agent": config.hackernews_user_agent})  # fmt: skip
    try:
        yield Reader(config, pages, api)
    finally:
        await pages.aclose()
        await api.aclose()


@function(consumes=[LIKED], produces=[CONTENT], lifespan=open_reader)
async def handle(event: Event, ctx: Context) -> Event:
    """Readable text of the page a liked Hacker News item links to, or of the post itself."""
    reader: Reader = ctx.state
    liked = event.data
    item_id = int(liked["item_id"])
    limit = reader.config.hackernews_max_text_chars
    extra: dict[str, Any] = {}
    if liked.get("url"):
        fetched = await reader.pages.get(str(liked["url"]))
        if fetched.problem is not None:
            ctx.log.info("hackernews.page_not_read", item_id=item_id, url=fetched.url,
                         why=fetched.problem)  # fmt: skip
        title, text = await asyncio.to_thread(readable, fetched)
        url = fetched.url
        if fetched.status is not None:
            extra["http_status"] = fetched.status
        if _MIME.match(fetched.content_type) and len(fetched.content_type) <= 255:
            extra["content_type"] = fetched.content_type
    else:
        post = await reader.post(item_id) or {}
        url = f"{reader.config.hackernews_site_url}/item?id={item_id}"
        title = post.get("title") if isinstance(post.get("title"), str) else None
        text = post_text(post["text"]) if isinstance(post.get("text"), str) else ""
    stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    data = {
        "schema_version": "1.0",
        "timestamp": stamp,
        "account": liked["account"],
        "item_id": item_id,
        "url": url[:8192],
        "title": (title or liked["title"])[:1024],
        "text": text[:limit],
        "fetched_at": stamp,
        **extra,
    }
    return event.derive(CONTENT, data, source=ctx.source)
