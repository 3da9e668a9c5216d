"""``urls``: ``task.url.ingest`` in; archived posts, Hacker News items, PDFs and web pages out.

What a URL becomes is decided by the URL, then by what the server sends:

- an X/Twitter status URL (``x.com/<handle>/status/<id>``, ``twitter.com/…``) →
  ``task.url.processed.twitter_archived``, from the oEmbed endpoint
  (LOOM_URLS_TWITTER_OEMBED_URL);
- a Hacker News item (``news.ycombinator.com/item?id=N``) →
  ``task.url.processed.hackernews_archived``, from the HN API
  (LOOM_URLS_HACKERNEWS_API_URL), with the readable text of the page it links to (web
  page, PDF or plain text) after the post's own text;
- anything else is fetched: a PDF → ``task.url.processed.pdf_extracted`` (text per page,
  page count, metadata, a copy in the blob store); a web page (HTML) or plain text →
  ``task.url.processed.web_archived`` (its main text without navigation and
  boilerplate, title, author, date and site name where the page states them). Any other
  content type is a dead letter that says so.

A ``kind`` of ``twitter`` or ``hackernews`` on a URL that is neither is a dead letter; a
``kind`` of ``pdf`` fetches even a post's URL, and one that turns out to be something
else is a dead letter too. URLs from events are fetched only from public addresses
unless the settings allow more (:mod:`loom.web`); the two APIs are the operator's and
are not checked. What can never be fetched (a refused address, 404/410, too large, an
unwanted type) is a dead letter with the reason; what may pass (a timeout, 5xx, 429, a
refused connection) is retried.

Text is extracted by warm worker processes, stopped after
LOOM_URLS_EXTRACT_TIMEOUT_SECONDS: a document that took longer would again, and is a
dead letter (an HN item's linked page is left out instead). No more text is extracted
than the event holds, nor more than LOOM_URLS_MAX_PDF_PAGES pages of a PDF.
"""

from __future__ import annotations

import asyncio
import json
import re
import ssl
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Any

import httpx

from functions.urls.extract import (
    HTML_TYPES,
    PDF_TYPES,
    TEXT_TYPES,
    ContentUnreadable,
    Page,
    html_page,
    looks_like_pdf,
    pdf_document,
    plain_text,
)
from functions.urls.settings import UrlsSettings, urls_settings
from functions.urls.sources import TweetRef, hn_item_id, hn_text, tweet_from_oembed, tweet_ref
from loom.catalog import default_catalog
from loom.logging import get_logger
from loom.runtime.context import Context
from loom.runtime.event import Event
from loom.runtime.invoke import HandlerFailed, PoisonEvent, Unavailable
from loom.runtime.registry import function
from loom.settings import LoomSettings
from loom.store import BlobStore, open_blob_store, store_settings
from loom.web import (
    ExtractionFailed,
    Extractor,
    ExtractorUnavailable,
    Fetched,
    Fetcher,
    FetchFailed,
    FetchRefused,
    Resolver,
    check_url,
    short_url,
    system_resolve,
)

__all__ = [
    "HN",
    "INGEST",
    "PDF",
    "TWEET",
    "WEB",
    "TryLater",
    "UrlRefused",
    "Urls",
    "handle",
    "open_urls",
]

INGEST = "task.url.ingest"
TWEET = "task.url.processed.twitter_archived"
HN = "task.url.processed.hackernews_archived"
PDF = "task.url.processed.pdf_extracted"
WEB = "task.url.processed.web_archived"
SNIFFED = frozenset({"", "application/octet-stream", "binary/octet-stream"})
_ROOM = 2048  # bytes of an event's data kept free for derived_from
_ARTICLE_TEXT = 2_000_000  # characters: hackernews_archived's schema limit
# the schema's pattern of a MIME type; a server's odd header is replaced by its media type
_MIME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*(\s*;.*)?$")
log = get_logger("loom.function.urls")


class UrlRefused(PoisonEvent):
    """The URL can never be archived as asked: the event becomes a dead letter."""


class TryLater(HandlerFailed):
    """The fetch failed in a way that may pass: the event is tried again later."""


@dataclass(frozen=True)
class Urls:
    """What the handler keeps between events (``ctx.state``)."""

    config: UrlsSettings
    web: Fetcher  # URLs from events: guarded
    api: Fetcher  # the oEmbed and HN endpoints of the settings
    blobs: BlobStore | None  # copies of PDFs; None keeps none
    extract: Extractor  # worker processes that extract text, with a time limit


@asynccontextmanager
async def open_urls(
    settings: LoomSettings,
    *,
    blobs: BlobStore | None = None,
    resolve: Resolver = system_resolve,
    verify: ssl.SSLContext | bool = True,
    extractor: Extractor | None = None,
) -> AsyncIterator[Urls]:
    """The two HTTP clients, the blob store (LOOM_STORE_BLOB_URL unless ``blobs`` is
    given; none when LOOM_URLS_KEEP_PDF is false) and the extracting workers, started
    now so that they are warm (unless ``extractor`` is given: its owner runs it)."""
    config = urls_settings(settings)
    options = config.fetch_options()
    if blobs is None and config.urls_keep_pdf:
        stored = store_settings(settings)
        blobs = open_blob_store(stored.store_blob_url, stored.store_s3_endpoint_url)
    async with AsyncExitStack() as stack:
        web = Fetcher(options, resolve=resolve, verify=verify)
        stack.push_async_callback(web.aclose)
        api = Fetcher(replace(options, policy=None), verify=verify)
        stack.push_async_callback(api.aclose)
        if extractor is None:
            extractor = await stack.enter_async_context(config.extractor())
        yield Urls(config, web, api, blobs if config.urls_keep_pdf else None, extractor)


@function(
    consumes=[INGEST],
    produces=[TWEET, HN, PDF, WEB],
    lifespan=open_urls,
    concurrency=16,  # waiting on remote servers, mostly
    retries=6,  # 1 s doubling: a site down for a minute or two does not dead-letter the task
)
async def handle(event: Event, ctx: Context) -> Event:
    """Archives X/Twitter posts, Hacker News items and web pages; extracts PDFs' text."""
    try:
        return await _archive(event, ctx)
    except FetchRefused as exc:
        raise UrlRefused(str(exc)) from None
    except FetchFailed as exc:
        raise TryLater(str(exc)) from None
    except ExtractionFailed as exc:  # a document that took too long would do it again
        raise UrlRefused(f"{short_url(event.data['url'])}: extracting its text {exc}; it "
                         "would take as long again") from None  # fmt: skip
    except ExtractorUnavailable as exc:
        raise Unavailable(f"text cannot be extracted now: {exc}") from None


async def _archive(event: Event, ctx: Context) -> Event:
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
        raise UrlRefused(f"{short_url(url)} is not an X/Twitter post "
                         "(x.com/<handle>/status/<id>)")  # fmt: skip
    if kind == "hackernews":
        raise UrlRefused(f"{short_url(url)} is not a Hacker News item "
                         "(news.ycombinator.com/item?id=N)")  # fmt: skip
    fetched = await _document(urls, url, kind)
    if looks_like_pdf(fetched.body):
        return _derive(event, ctx, PDF, await _pdf(urls, fetched, url), "text")
    if fetched.media_type in HTML_TYPES | TEXT_TYPES:
        return _derive(event, ctx, WEB, await _page(urls, fetched, data["url"]), "text")
    sent = fetched.media_type or "no content type"
    raise UrlRefused(f"{short_url(fetched.url)} is not a PDF ({sent}, no %PDF- header)")


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


def _is_json(mime: str) -> bool:
    return not mime or mime == "application/json" or mime.endswith("+json")


async def _api_json(urls: Urls, url: str, what: str, params: dict[str, str] | None = None) -> Any:
    try:
        fetched = await urls.api.get(url, params=params, accept=_is_json)
    except FetchRefused as exc:
        if exc.reason != "content_type":
            raise
        raise TryLater(f"{what}: {short_url(url)} answered {exc.media_type}, not JSON") from None
    try:
        return json.loads(fetched.body)
    except ValueError as exc:
        raise TryLater(
            f"{what}: {short_url(url)} answered something that is not JSON: {exc}"
        ) from None


async def _tweet(urls: Urls, ref: TweetRef) -> dict[str, Any]:
    what = f"X post {ref.id}"
    endpoint = urls.config.urls_twitter_oembed_url
    asked = f"https://twitter.com/{ref.handle or 'i/web'}/status/{ref.id}"
    try:
        answer = await _api_json(urls, endpoint, what,
                                 {"url": asked, "omit_script": "true", "dnt": "true"})  # fmt: skip
    except FetchRefused as exc:
        raise UrlRefused(f"{what} cannot be archived (deleted, protected or never there): "
                         f"{exc}") from None  # fmt: skip
    post = tweet_from_oembed(answer, ref)
    if post is None:
        raise TryLater(f"{what}: {short_url(endpoint)} did not answer in the oEmbed shape")
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
        raise TryLater(f"{what}: {short_url(endpoint)} did not answer with that item")
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
        made["article_text"] = "\n\n".join(t for t in texts if t)[:_ARTICLE_TEXT]
    return made


def _link(value: Any, ctx: Context) -> str | None:
    """The URL an HN item links to, normalised (non-ASCII escaped), if it is one to fetch."""
    if not isinstance(value, str) or not value:
        return None
    try:
        link = str(check_url(value))
    except FetchRefused as exc:
        ctx.log.info("urls.article_skipped", reason=str(exc))
        return None
    return link if len(link) <= 8192 else None


async def _article(urls: Urls, link: str, ctx: Context) -> str | None:
    """The readable text of the page an HN item links to; None when it can never be had
    (the item is archived without it). A failure that may pass is raised (retried)."""
    try:
        fetched = await urls.web.get(link, accept=HTML_TYPES | PDF_TYPES | TEXT_TYPES | SNIFFED)
        if fetched.media_type in PDF_TYPES or looks_like_pdf(fetched.body):
            pages = urls.config.urls_max_pdf_pages
            document = await urls.extract.run(pdf_document, fetched.body, max_pages=pages,
                                              max_chars=_ARTICLE_TEXT)  # fmt: skip
            return document.text
        if fetched.media_type in TEXT_TYPES:
            return plain_text(fetched.body, fetched.charset)
        page = await urls.extract.run(html_page, fetched.body, fetched.url, fetched.charset,
                                      max_chars=_ARTICLE_TEXT)  # fmt: skip
    except (FetchRefused, ContentUnreadable) as exc:
        ctx.log.info("urls.article_skipped", url=short_url(link), reason=str(exc))
        return None
    except ExtractionFailed as exc:
        ctx.log.warning("urls.article_skipped", url=short_url(link),
                        reason=f"extracting its text {exc}")  # fmt: skip
        return None
    ctx.log.info("urls.article", url=short_url(fetched.url), title=page.title,
                 author=page.author, date=page.date, chars=len(page.text))  # fmt: skip
    return page.text


async def _document(urls: Urls, url: httpx.URL, kind: str | None) -> Fetched:
    """The body at a URL that is neither a post nor an HN item: a PDF, or (unless ``kind``
    is ``pdf``) a web page or plain text."""
    wanted = PDF_TYPES | SNIFFED if kind == "pdf" else PDF_TYPES | SNIFFED | HTML_TYPES | TEXT_TYPES
    try:
        return await urls.web.get(str(url), accept=wanted)
    except FetchRefused as exc:
        if exc.reason != "content_type":
            raise
        if kind == "pdf":
            why = "not a PDF: there is nothing to extract"
        else:
            why = "not a web page or a PDF: there is no text to keep"
        raise UrlRefused(f"{short_url(exc.url)} is {exc.media_type}, {why}") from None


async def _pdf(urls: Urls, fetched: Fetched, url: httpx.URL) -> dict[str, Any]:
    pages = urls.config.urls_max_pdf_pages
    document = await urls.extract.run(pdf_document, fetched.body, max_pages=pages,
                                      max_chars=default_catalog()[PDF].max_bytes)  # fmt: skip
    if document.page_count > 100_000:
        raise ContentUnreadable(f"the PDF has {document.page_count} pages, more than 100000")
    if document.page_count > pages:
        log.info("urls.pdf_pages_left_out", pages=document.page_count, read=pages)
    made: dict[str, Any] = {"url": fetched.url if len(fetched.url) <= 8192 else str(url),
                            "page_count": document.page_count,
                            "text": document.text}  # fmt: skip
    made.update({k: v for k, v in (("title", document.title), ("author", document.author)) if v})
    if urls.blobs is not None:
        ref = await asyncio.to_thread(urls.blobs.put, fetched.body, "application/pdf")
        made["document"] = ref.as_json()
    return made


async def _page(urls: Urls, fetched: Fetched, asked: str) -> dict[str, Any]:
    """A web page's (or a text file's) readable text and what the page says of itself."""
    most = default_catalog()[WEB].max_bytes  # characters: one more could not be kept
    if fetched.media_type in TEXT_TYPES:
        text = plain_text(fetched.body, fetched.charset)
        page = Page(text=text[:most], text_chars=len(text))
    else:
        page = await urls.extract.run(html_page, fetched.body, fetched.url, fetched.charset,
                                      max_chars=most)  # fmt: skip
    header = fetched.content_type
    made: dict[str, Any] = {
        "url": asked,
        "final_url": fetched.url if len(fetched.url) <= 8192 else asked,
        "text": page.text,
        "text_chars": page.text_chars,
        "content_type": header if _MIME.match(header) and len(header) <= 255
                        else fetched.media_type,
        "http_status": fetched.status,
        "archived_at": _now(),
    }  # fmt: skip
    optional = {"title": page.title, "author": page.author, "published": _day(page.date),
                "site_name": page.site_name}  # fmt: skip
    made.update({k: v for k, v in optional.items() if v})
    return made


def _day(value: str | None) -> str | None:
    """A page's date as ``YYYY-MM-DD`` when it is one, else None."""
    if value is None or not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        return None
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        return None
