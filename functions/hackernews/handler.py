"""``hackernews``: a liked item in, the readable text of what it links to out.

An item with a link: the linked page is fetched with :mod:`loom.web` (public addresses
only, size and time limits, each redirect checked) and its main text extracted
(trafilatura for web pages, pypdf for PDFs). An Ask HN or other text post: the post's
own text, from the API.

A page that can never be read (404, an image, too large, too many redirects, a host
that does not exist, a page or PDF whose text takes longer to extract than
LOOM_HACKERNEWS_EXTRACT_TIMEOUT_SECONDS) still gives ``content_fetched``, with an empty
text and the status and content type that say why, so every liked item has its content
event (its title can still be embedded). Text is extracted in worker processes (kept
warm), which are stopped at that time limit.

A link that is not fetched at all (not http(s), or to an address that is not public) is
a dead letter. Timeouts, refused connections, 5xx and 429 raise, and the runtime tries
again later.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from functions.hackernews.content import READABLE, SLOW, post_text, readable
from functions.hackernews.settings import HackerNewsSettings, hackernews_settings
from loom.runtime.context import Context
from loom.runtime.event import Event
from loom.runtime.invoke import HandlerFailed, PoisonEvent, Unavailable
from loom.runtime.registry import function
from loom.settings import LoomSettings
from loom.web import (
    ExtractionFailed,
    Extractor,
    ExtractorUnavailable,
    Fetched,
    Fetcher,
    FetchFailed,
    FetchRefused,
    Resolver,
    system_resolve,
)

__all__ = ["AddressRefused", "Reader", "TryLater", "handle", "open_reader"]

LIKED = "external.hackernews.liked"
CONTENT = "external.hackernews.content_fetched"
# the schema's pattern of a MIME type; a server's odd header is left out rather than kept
_MIME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*(\s*;.*)?$")


class AddressRefused(PoisonEvent):
    """The link is not fetched at all: not http(s), or an address that is not public."""


class TryLater(HandlerFailed):
    """The fetch failed in a way that may pass (timeout, 5xx, 429): retried later."""


@dataclass
class Reader:
    """What the handler keeps between events (``ctx.state``)."""

    config: HackerNewsSettings
    pages: Fetcher
    api: httpx.AsyncClient
    extract: Extractor  # worker processes that extract text, with a time limit

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

    async def readable(self, fetched: Fetched) -> tuple[str | None, str]:
        """The title and readable text of a fetched page; web pages and PDFs are read by
        the workers (:class:`ExtractionFailed` when that takes too long)."""
        limits = {"max_chars": self.config.hackernews_max_text_chars,
                  "max_pages": self.config.hackernews_max_pdf_pages}  # fmt: skip
        if fetched.media_type not in SLOW:
            return readable(fetched, **limits)
        try:
            return await self.extract.run(readable, fetched, **limits)
        except ExtractorUnavailable as exc:
            raise Unavailable(f"text cannot be extracted now: {exc}") from None


@asynccontextmanager
async def open_reader(
    settings: LoomSettings, *, resolve: Resolver = system_resolve,
    extractor: Extractor | None = None,
) -> AsyncIterator[Reader]:  # fmt: skip
    """The clients of linked pages and of the API, with the limits of the settings, and
    the extracting workers, started now so that they are warm (unless ``extractor`` is
    given: its owner runs it)."""
    config = hackernews_settings(settings)
    async with AsyncExitStack() as stack:
        pages = Fetcher(config.page_options(), resolve=resolve)
        stack.push_async_callback(pages.aclose)
        api = httpx.AsyncClient(timeout=config.hackernews_timeout_seconds,
                                headers={"User-Agent": config.hackernews_user_agent})  # fmt: skip
        stack.push_async_callback(api.aclose)
        if extractor is None:
            extractor = await stack.enter_async_context(config.extractor())
        yield Reader(config, pages, api, extractor)


@function(consumes=[LIKED], produces=[CONTENT], lifespan=open_reader)
async def handle(event: Event, ctx: Context) -> Event:
    """Readable text of the page a liked Hacker News item links to, or of the post itself."""
    reader: Reader = ctx.state
    liked = event.data
    item_id = int(liked["item_id"])
    limit = reader.config.hackernews_max_text_chars
    extra: dict[str, Any] = {}
    if liked.get("url"):
        title, text = None, ""
        try:
            fetched = await reader.pages.get(str(liked["url"]), accept=READABLE)
        except FetchRefused as exc:
            if exc.reason in ("url", "address"):
                raise AddressRefused(str(exc)) from None
            ctx.log.info("hackernews.page_not_read", item_id=item_id, url=exc.url,
                         why=str(exc))  # fmt: skip
            url, status, content_type = exc.url, exc.status, exc.content_type
        except FetchFailed as exc:
            raise TryLater(str(exc)) from None
        else:
            url, status, content_type = fetched.url, fetched.status, fetched.content_type
            try:
                title, text = await reader.readable(fetched)
            except ExtractionFailed as exc:
                ctx.log.warning("hackernews.page_not_read", item_id=item_id, url=url,
                                why=f"extracting its text {exc}")  # fmt: skip
        if status is not None:
            extra["http_status"] = status
        if _MIME.match(content_type) and len(content_type) <= 255:
            extra["content_type"] = content_type
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
