"""``hackernews`` fetcher: the items an account favourited or upvoted, each said once.

Hacker News has no API for these lists, so their pages are read: ``/favorites?id=USER``
(public) and ``/upvoted?id=USER`` (its owner only: the fetcher logs in, or uses the
configured ``user`` cookie), newest first, 30 items a page, ``&p=N`` for the next. The
title and link of each new item come from the API (``/v0/item/{id}.json``).

The cursor keeps, per list, the ids at its top after the last run. A run reads pages
until one holds a known id (normally the first page), and at most
``LOOM_HACKERNEWS_MAX_PAGES`` (the first run's reach into the past). Each page's new
items are sent as they are read with the old cursor; the new top is saved only once
the list is read through, so a run that fails half-way reads the same items again,
and they get the same ids (``kind|item id``): one like is one event, however often it
is read. Hacker News does not say when an item was liked: ``liked_at`` is when the
like was first seen.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx

from functions.hackernews.pages import ListedItem
from functions.hackernews.settings import HackerNewsSettings, HnAccount, Kind
from functions.hackernews.site import HackerNewsSite
from loom.runtime.event import Event
from loom.runtime.fetcher import Batch, FetchContext, fetcher

__all__ = ["LIKED", "fetch"]

LIKED = "external.hackernews.liked"
# Ids kept per list: two pages' worth, so that a few items un-liked (or liked again)
# at the top still leave known ids on the first page.
REMEMBER = 60
_MESSAGE = {"favorites": "favorite", "upvoted": "upvoted"}  # message_id: hn-upvoted-42


@fetcher(produces=[LIKED], settings=HackerNewsSettings, schedule="*/30 * * * *")
async def fetch(
    account: HnAccount, cursor: dict[str, Any], ctx: FetchContext
) -> AsyncIterator[Batch]:
    """Hacker News items an account favourited or upvoted."""
    state = dict(cursor)
    async with HackerNewsSite(ctx.settings) as site:
        for kind in account.kinds:
            cookie = await site.session(account) if kind == "upvoted" else None
            async for batch in _read_list(site, account, kind, cookie, state, ctx):
                yield batch


async def _read_list(
    site: HackerNewsSite,
    account: HnAccount,
    kind: Kind,
    cookie: str | None,
    state: dict[str, Any],
    ctx: FetchContext,
) -> AsyncIterator[Batch]:
    config: HackerNewsSettings = ctx.settings
    seen = [int(i) for i in (state.get(kind) or {}).get("top", [])]
    known = set(seen)
    listed: list[int] = []  # this run's list, top first
    new_total = pages = 0
    reached_known = False
    more = True
    while more and not reached_known and pages < config.hackernews_max_pages:
        pages += 1
        page = await site.list_page(kind, account.username, pages, cookie)
        # later pages may repeat a few rows of earlier ones when likes come in meanwhile
        new = [i for i in page.items if i.id not in known and i.id not in listed]
        listed += [i.id for i in page.items if i.id not in listed]
        reached_known = any(i.id in known for i in page.items)
        more = page.more
        if new:
            new_total += len(new)
            yield Batch(await _events(site, account, kind, new, ctx), dict(state))
    if more and not reached_known:
        ctx.log.info("hackernews.older_not_read", kind=kind, pages=pages,
                     first_run=not seen)  # fmt: skip
    state[kind] = {"top": list(dict.fromkeys(listed + seen))[:REMEMBER]}
    ctx.log.info("hackernews.list_read", kind=kind, pages=pages, new=new_total)
    yield Batch([], dict(state))


async def _events(
    site: HackerNewsSite,
    account: HnAccount,
    kind: Kind,
    items: list[ListedItem],
    ctx: FetchContext,
) -> list[Event]:
    details = await asyncio.gather(*(site.item(i.id) for i in items))
    stamp = _rfc3339(ctx.now)
    events = []
    for item, detail in zip(items, details, strict=True):
        detail = detail or {}
        title = detail.get("title") if isinstance(detail.get("title"), str) else item.title
        url = _link(detail.get("url")) or _link(item.href)
        data: dict[str, Any] = {
            "schema_version": "1.0",
            "timestamp": stamp,
            "message_id": f"hn-{_MESSAGE[kind]}-{item.id}",
            "account": account.username,
            "item_id": item.id,
            "title": (title or "")[:512],
            "liked_at": stamp,
        }
        if url is not None:
            data["url"] = url
        events.append(ctx.event(LIKED, data, key=f"{kind}|{item.id}"))
    return events


def _link(value: object) -> str | None:
    """``value`` as an absolute http(s) URL, normalised; None for anything else (a
    list page's ``item?id=…`` of a text post, say)."""
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        return None
    try:
        url = httpx.URL(value.strip())
    except (httpx.InvalidURL, ValueError):
        return None
    text = str(url)
    return text if url.host and len(text) <= 8192 else None


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
