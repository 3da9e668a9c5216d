"""``urls``: ``task.url.ingest`` in; archived posts, Hacker News items and PDFs out.

What a URL becomes is decided by the URL, then by what the server sends:

- an X/Twitter status URL (``x.com/<handle>/status/<id>``, ``twitter.com/…``) →
  ``task.url.processed.twitter_archived``, from the oEmbed endpoint
  (LOOM_URLS_TWITTER_OEMBED_URL);
- a Hacker News item (``news.ycombinator.com/item?id=N``) →
  ``task.url.processed.hackernews_archived``, from the HN API
  (LOOM_URLS_HACKERNEWS_API_URL), with the readable text of the page it links to (web
  page, PDF or plain text) after the post's own text;
- anything else is fetched: a PDF → ``task.url.processed.pdf_extracted`` (text per page,
  page count, metadata, a copy in the blob store). A web page on its own has no
  processed type in the catalog, so it is a dead letter that says so, as is any other
  content type.

A ``kind`` of ``twitter`` or ``hackernews`` on a URL that is neither is a dead letter; a
``kind`` of ``pdf`` that turns out to be something else is one too. URLs from events are
fetched only from public addresses unless the settings allow more (see
:mod:`functions.urls.fetch`); the two APIs are the operator's and are not checked.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from functions.urls.address import AddressPolicy
from functions.urls.extract import (
    HTML_TYPES,
    PDF_TYPES,
    TEXT_TYPES,
    ContentUnreadable,
    html_page,
    looks_like_pdf,
    pdf_document,
    plain_text,
)
from functions.urls.fetch import (
    Fetcher,
    FetchFailed,
    Resolver,
    UrlRefused,
    check_url,
    short,
    system_resolve,
)
from functions.urls.settings import UrlsSettings, urls_settings
from functions.urls.sources import TweetRef, hn_item_id, hn_text, tweet_from_oembed, tweet_ref
from loom.catalog import default_catalog
from loom.logging import get_logger
from loom.runtime.context import Context
from loom.runtime.event import Event
from loom.runtime.registry import function
from loom.settings import LoomSettings
from loom.store import BlobStore, open_blob_store, store_settings

__all__ = ["HN", "INGEST", "PDF", "TWEET", "Urls", "handle", "open_urls"]

INGEST = "task.url.ingest"
TWEET = "task.url.processed.twitter_archived"
HN = "task.url.processed.hackernews_archived"
PDF = "task.url.processed.pdf_extracted"
SNIFFED = frozenset({"", "application/octet-stream", "binary/octet-stream"})
_ROOM = 2048  # bytes of an event's data kept free for derived_from
log = get_logger("loom.function.urls")


@dataclass(frozen=True)
class Urls:
    """What the handler keeps between events (``ctx.state``)."""

    config: UrlsSettings
    web: Fetcher  # URLs from events: guarded
    api: Fetcher  # the oEmbed and HN endpoints of the settings
    blobs: BlobStore | None  # copies of PDFs; None keeps none


@asynccontextmanager
async def open_urls(
    settings: LoomSettings,
    *,
    blobs: BlobStore | None = None,
    resolve: Resolver = system_resolve,
    verify: ssl.SSLContext | bool = True,
) -> AsyncIterator[Urls]:
    """The two HTTP clients and the blob store (LOOM_STORE_BLOB_URL unless ``blobs`` is
    given; none when LOOM_URLS_KEEP_PDF is false)."""
    config = urls_settings(settings)
    policy = AddressPolicy.of(config.urls_allow_private, config.urls_allowed_networks)
    if blobs is None and config.urls_keep_pdf:
        stored = store_settings(settings)
        blobs = open_blob_store(stored.store_blob_url, stored.store_s3_endpoint_url)
    async with AsyncExitStack() as stack:
        web = Fetcher(config, policy, resolve=resolve, verify=verify)
        stack.push_async_callback(web.aclose)
        api = Fetcher(config, None, verify=verify)
        stack.push_async_callback(api.aclose)
        yield Urls(config, web, api, blobs if config.urls_keep_pdf else None)


@function(
    consumes=[INGEST],
    produces=[TWEET, HN, PDF],
    lifespan=open_urls,
    concurrency=16,  # waiting on remote servers, mostly
)
async def handle(event: Event, ctx: Context) -> Event:
    """Archives X/Twitter posts and Hacker News items; extracts the text of PDFs."""
    urls: Urls = ctx.state
    data: dict[str, Any] = event.data
    url = check_url(data["url"])
    kind = data.get("kind")
    tweet, item = tweet_ref(url), hn_item_id(url)
    if tweet is not None and kind != "pdf":
        made = await _tweet(urls, tweet)
        return _derive(event, ctx, TWEET, made, "text")
    if item is not None and kind != "pdf":
        made = await _hackernews(urls, item, ctx)
        return _derive(event, ctx, HN, made, "article_text")
    if kind == "twitter":
        raise UrlRefused(f"{short(url)} is not an X/Twitter post (x.com/<handle>/status/<id>)")
    if kind == "hackernews":
        raise UrlRefused(f"{short(url)} is not a Hacker News item (news.ycombinator.com/item?id=N)")
    made = await _pdf(urls, url, kind)
    return _derive(event, ctx, PDF, made, "text")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _derive(event: Event, ctx: Context, type_: str, made: dict[str, Any], text: str) -> Event:
    """The output event: ``made`` with the task's timestamp, device and account, its
    ``text`` field cut where the catalog's size limit for the type would be passed."""
    data = {"schema_version": "1.0", "timestamp": event.data["timestamp"]}
    data.update({k: event.data[k] for k in ("device_id", "account") if k in event.data})
    data.update(made)
    _fit(data, text, default_catalog()[type_].max_bytes - _ROOM)
    return event.derive(type_, data, source=ctx.source)


def _fit(data: dict[str, Any], field: str, most: int) -> None:
    size = len(json.dumps(data, ensure_ascii=False).encode())
    if size > most and isinstance(data.get(field), str):
        # every character dropped takes at least one byte off: one cut is enough
        data[field] = data[field][: max(0, len(data[field]) - (size - most))]
        log.info("urls.text_cut", field=field, bytes=size, most=most)


async def _api_json(urls: Urls, url: str, what: str, params: dict[str, str] | None = None) -> Any:
    def accept(mime: str) -> None:
        if mime and mime != "application/json" and not mime.endswith("+json"):
            raise FetchFailed(f"{what}: {short(url)} answered {mime}, not JSON")

    fetched = await urls.api.get(url, params=params, accept=accept)
    try:
        return json.loads(fetched.body)
    except ValueError as exc:
        raise FetchFailed(
            f"{what}: {short(url)} answered something that is not JSON: {exc}"
        ) from None


async def _tweet(urls: Urls, ref: TweetRef) -> dict[str, Any]:
    what = f"X post {ref.id}"
    endpoint = urls.config.urls_twitter_oembed_url
    asked = f"https://twitter.com/{ref.handle or 'i/web'}/status/{ref.id}"
    try:
        answer = await _api_json(urls, endpoint, what,
                                 {"url": asked, "omit_script": "true", "dnt": "true"})  # fmt: skip
    except UrlRefused as exc:
        raise UrlRefused(f"{what} cannot be archived (deleted, protected or never there): "
                         f"{exc}") from None  # fmt: skip
    post = tweet_from_oembed(answer, ref)
    if post is None:
        raise FetchFailed(f"{what}: {short(endpoint)} did not answer in the oEmbed shape")
    made: dict[str, Any] = {
        "url": TweetRef(ref.id, post.handle).permalink,
        "tweet_id": ref.id,
        "author_handle": post.handle,
        "text": post.text,
        "archived_at": _now(),
    }
    optional = {"author_name": post.name, "created_at": post.created_at}
    made.update({k: v for k, v in optional.items() if v is not None})
    return made


async def _hackernews(urls: Urls, item_id: int, ctx: Context) -> dict[str, Any]:
    what = f"Hacker News item {item_id}"
    endpoint = f"{urls.config.urls_hackernews_api_url}/v0/item/{item_id}.json"
    item = await _api_json(urls, endpoint, what)
    if item is None:
        raise UrlRefused(f"{what} does not exist")
    if not isinstance(item, dict) or item.get("id") != item_id:
        raise FetchFailed(f"{what}: {short(endpoint)} did not answer with that item")
    if item.get("deleted"):
        raise UrlRefused(f"{what} was deleted")
    made: dict[str, Any] = {
        "url": f"https://news.ycombinator.com/item?id={item_id}",
        "item_id": item_id,
        "title": str(item.get("title") or "")[:512],
        "archived_at": _now(),
    }
    if isinstance(item.get("by"), str) and 0 < len(item["by"]) <= 64:
        made["by"] = item["by"]
    for field, key in (("points", "score"), ("comments_count", "descendants")):
        if isinstance(item.get(key), int) and item[key] >= 0:
            made[field] = item[key]
    texts = [hn_text(item["text"])] if isinstance(item.get("text"), str) else []
    link = _link(item.get("url"), ctx)
    if link is not None:
        made["article_url"] = link
        article = await _article(urls, link, ctx)
        if article:
            texts.append(article)
    if any(texts):
        made["article_text"] = "\n\n".join(t for t in texts if t)[:2_000_000]
    return made


def _link(value: Any, ctx: Context) -> str | None:
    """The URL an HN item links to, normalised (non-ASCII escaped), if it is one to fetch."""
    if not isinstance(value, str) or not value:
        return None
    try:
        link = str(check_url(value))
    except UrlRefused as exc:
        ctx.log.info("urls.article_skipped", reason=str(exc))
        return None
    return link if len(link) <= 8192 else None


async def _article(urls: Urls, link: str, ctx: Context) -> str | None:
    """The readable text of the page an HN item links to; None when it can never be had
    (the item is archived without it). A failure that may pass is raised (retried)."""

    def accept(mime: str) -> None:
        if mime not in HTML_TYPES | PDF_TYPES | TEXT_TYPES | SNIFFED:
            raise UrlRefused(f"{short(link)} is {mime}, which has no text to keep")

    try:
        fetched = await urls.web.get(link, accept=accept)
        if fetched.content_type in PDF_TYPES or looks_like_pdf(fetched.body):
            return (await asyncio.to_thread(pdf_document, fetched.body)).text
        if fetched.content_type in TEXT_TYPES:
            return plain_text(fetched.body, fetched.charset)
        page = await asyncio.to_thread(html_page, fetched.body, fetched.url, fetched.charset)
    except (UrlRefused, ContentUnreadable) as exc:
        ctx.log.info("urls.article_skipped", url=short(link), reason=str(exc))
        return None
    ctx.log.info("urls.article", url=short(fetched.url), title=page.title, author=page.author,
                 date=page.date, chars=len(page.text))  # fmt: skip
    return page.text


async def _pdf(urls: Urls, url: httpx.URL, kind: str | None) -> dict[str, Any]:
    def accept(mime: str) -> None:
        if mime in PDF_TYPES or mime in SNIFFED:
            return
        if mime in HTML_TYPES and kind != "pdf":
            raise UrlRefused(
                f"{short(url)} is a web page ({mime}); the catalog has no processed type for "
                "web pages on their own, only for X/Twitter posts, Hacker News items and PDFs"
            )
        raise UrlRefused(f"{short(url)} is {mime}, not a PDF: there is nothing to extract")

    fetched = await urls.web.get(str(url), accept=accept)
    if not looks_like_pdf(fetched.body):
        sent = fetched.content_type or "no content type"
        raise UrlRefused(f"{short(fetched.url)} is not a PDF ({sent}, no %PDF- header)")
    document = await asyncio.to_thread(pdf_document, fetched.body)
    if document.page_count > 100_000:
        raise ContentUnreadable(f"the PDF has {document.page_count} pages, more than 100000")
    made: dict[str, Any] = {"url": fetched.url if len(fetched.url) <= 8192 else str(url),
                            "page_count": document.page_count,
                            "text": document.text[:20_000_000]}  # fmt: skip
    made.update({k: v for k, v in (("title", document.title), ("author", document.author)) if v})
    if urls.blobs is not None:
        ref = await asyncio.to_thread(urls.blobs.put, fetched.body, "application/pdf")
        made["document"] = ref.as_json()
    return made
