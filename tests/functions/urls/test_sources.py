"""X/Twitter posts (through an oEmbed endpoint) and Hacker News items (through the HN API,
with the page they link to) become their archives. The endpoints are real servers on
127.0.0.1 answering in those APIs' shapes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from functions.urls.handler import TryLater
from loom.runtime.invoke import HandlerFailed, PoisonEvent
from loom.testing import assert_emitted
from tests.functions.urls.conftest import Make, Site, hosts, make_pdf, slow_pdf, task

TWEET = "task.url.processed.twitter_archived"
HN = "task.url.processed.hackernews_archived"
PDF = "task.url.processed.pdf_extracted"


def oembed(site: Site, handle: str, name: str, text_html: str, status: int = 200) -> None:
    answer = {
        "url": f"https://twitter.com/{handle}/status/1861234567890123456",
        "author_name": name,
        "author_url": f"https://twitter.com/{handle}",
        "html": f'<blockquote class="twitter-tweet"><p lang="en" dir="ltr">{text_html}</p>'
        f"&mdash; {name} (@{handle}) "
        f'<a href="https://twitter.com/{handle}/status/1861234567890123456">Nov 24, 2026</a>'
        "</blockquote>\n",
        "width": 550, "height": None, "type": "rich", "cache_age": "3153600000",
        "provider_name": "Twitter", "provider_url": "https://twitter.com", "version": "1.0",
    }  # fmt: skip
    site.page("/oembed", json.dumps(answer), "application/json; charset=utf-8", status=status)


def hn_item(site: Site, item: Any) -> None:
    item_id = item["id"] if isinstance(item, dict) else 42000001
    site.page(f"/v0/item/{item_id}.json", json.dumps(item), "application/json; charset=utf-8")


ARTICLE = """<html><head><title>Loom: a tiny event pipeline</title>
<meta name="author" content="Ada Lovelace">
<meta property="article:published_time" content="2026-11-20T09:00:00Z"></head>
<body><nav><a href="/">Home</a> | <a href="/about">About</a> | Subscribe now</nav>
<article><h1>Loom: a tiny event pipeline</h1>
<p>Loom collects events from your devices and keeps them in one place, so that you can
query and replay your own life's data whenever you like, on your own machine.</p>
<p>Every event goes through Kafka first, then through small functions, and ends up in
PostgreSQL with a retention period that fits what it is.</p></article>
<footer>Copyright 2026. Cookie settings.</footer></body></html>"""


# ── X/Twitter ─────────────────────────────────────────────────────────────────


async def test_a_post_is_archived_from_the_oembed_endpoint(make: Make, site: Site) -> None:
    oembed(site, "simonw", "Simon Willison",
           "Notes on running small LLMs locally<br>on a laptop &amp; a phone "
           '<a href="https://t.co/abc">pic.twitter.com/abc</a>')  # fmt: skip
    h = await make()
    url = "https://x.com/simonw/status/1861234567890123456?s=20"
    (made,) = assert_emitted(await h.call(task(url)), TWEET, count=1)
    data = made.data
    assert data["url"] == "https://x.com/simonw/status/1861234567890123456"
    assert (data["tweet_id"], data["author_handle"]) == ("1861234567890123456", "simonw")
    assert data["author_name"] == "Simon Willison"
    assert data["text"] == (
        "Notes on running small LLMs locally\non a laptop & a phone pic.twitter.com/abc"
    )
    # from the id: milliseconds since 2010-11-04T01:42:54.657Z in its upper 41 bits
    assert data["created_at"] == "2024-11-26T02:24:35.708Z"
    assert data["archived_at"].endswith("Z")
    (asked,) = site.asked
    assert asked["path"] == "/oembed"
    assert asked["query"]["url"] == ["https://twitter.com/simonw/status/1861234567890123456"]
    assert asked["query"]["omit_script"] == ["true"]


async def test_a_post_url_without_a_handle_takes_it_from_the_answer(make: Make, site: Site) -> None:
    oembed(site, "nasa", "NASA", "Liftoff!")
    made = await (await make()).call(task("https://twitter.com/i/web/status/1861000000000000001"))
    assert made[0].data["author_handle"] == "nasa"
    assert made[0].data["url"] == "https://x.com/nasa/status/1861000000000000001"


async def test_a_post_that_is_gone_is_a_dead_letter(make: Make, site: Site) -> None:
    site.page("/oembed", "", "application/json", status=404)
    with pytest.raises(PoisonEvent, match="X post 1861000000000000001 cannot be archived"):
        await (await make()).call(task("https://x.com/nasa/status/1861000000000000001"))


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        ("{}", 503, "503 Service Unavailable"),
        ('{"error": "nope"}', 200, "did not answer in the oEmbed shape"),
        ("<html>", 200, "not JSON"),
    ],
)
async def test_an_oembed_endpoint_in_trouble_is_retried(
    make: Make, site: Site, body: str, status: int, reason: str
) -> None:
    kind = "text/html" if body.startswith("<") else "application/json"
    site.page("/oembed", body, kind, status=status)
    with pytest.raises(TryLater, match=reason):
        await (await make()).call(task("https://x.com/nasa/status/1861000000000000001"))


# ── Hacker News ───────────────────────────────────────────────────────────────


async def test_a_story_is_archived_with_the_text_of_the_page_it_links_to(
    make: Make, site: Site
) -> None:
    article = site.page("/loom", ARTICLE, "text/html; charset=utf-8")
    hn_item(site, {"id": 42000001, "type": "story", "by": "pg_fan", "score": 231,
                   "descendants": 87, "time": 1795000000, "url": article,
                   "title": "Show HN: A tiny event pipeline for your own data"})  # fmt: skip
    h = await make(urls_allow_private=True)  # the article is on 127.0.0.1 too
    made = await h.call_example("task.url.ingest", name="minimal")
    (archived,) = assert_emitted(made, HN, count=1)
    data = archived.data
    assert data["url"] == "https://news.ycombinator.com/item?id=42000001"
    assert data["item_id"] == 42000001
    assert data["title"] == "Show HN: A tiny event pipeline for your own data"
    assert (data["by"], data["points"], data["comments_count"]) == ("pg_fan", 231, 87)
    assert data["article_url"] == article
    text = data["article_text"]
    assert "Loom collects events from your devices" in text
    assert "ends up in PostgreSQL" in text.replace("\n", " ")
    assert "Subscribe now" not in text
    assert "Cookie settings" not in text
    assert site.paths() == ["/v0/item/42000001.json", "/loom"]


async def test_an_ask_hn_post_keeps_its_own_text(make: Make, site: Site) -> None:
    text = ("I&#x27;ve tried <i>paper</i>.<p>And apps: "
            '<a href="https://example.org">example.org</a> &amp; more.')  # fmt: skip
    hn_item(site, {"id": 42000002, "type": "story", "by": "ada", "score": 12,
                   "title": "Ask HN: How do you keep a personal log?", "text": text})  # fmt: skip
    (made,) = await (await make()).call(task("https://news.ycombinator.com/item?id=42000002"))
    assert made.data["article_text"] == "I've tried paper.\n\nAnd apps: example.org & more."
    assert "article_url" not in made.data


async def test_a_story_linking_to_a_pdf_keeps_the_pdf_text(make: Make, site: Site) -> None:
    pdf = site.page("/paper", make_pdf(["Abstract. Logs.", "More"]), "application/pdf")
    hn_item(site, {"id": 7, "type": "story", "title": "A paper", "url": pdf})
    h = await make(urls_allow_private=True)
    (made,) = await h.call(task("https://news.ycombinator.com/item?id=7"))
    assert made.data["article_text"] == "Abstract. Logs.\fMore"


async def test_a_story_linking_to_a_private_address_is_archived_without_the_article(
    make: Make, site: Site
) -> None:
    """The HN API is the operator's (here on 127.0.0.1 and fetched); the link in the item
    is not, and is refused."""
    article = site.page("/loom", ARTICLE, "text/html")
    hn_item(site, {"id": 8, "type": "story", "title": "Local", "url": article})
    (made,) = await (await make()).call(task("https://news.ycombinator.com/item?id=8"))
    assert made.data["article_url"] == article
    assert "article_text" not in made.data
    assert site.paths() == ["/v0/item/8.json"]


async def test_a_story_linking_to_a_pdf_too_slow_to_read_is_archived_without_it(
    make: Make, site: Site
) -> None:
    pdf = site.page("/slow", slow_pdf(), "application/pdf")
    hn_item(site, {"id": 11, "type": "story", "title": "A slow paper", "url": pdf})
    h = await make(urls_allow_private=True, urls_extract_timeout_seconds=0.5,
                   urls_extract_workers=1)  # fmt: skip
    (made,) = await h.call(task("https://news.ycombinator.com/item?id=11"))
    assert (made.data["title"], made.data["article_url"]) == ("A slow paper", pdf)
    assert "article_text" not in made.data


@pytest.mark.parametrize(
    ("status", "content_type"), [(404, "text/html"), (200, "image/png"), (200, "video/mp4")]
)
async def test_a_link_that_has_no_text_leaves_the_item_archived_without_it(
    make: Make, site: Site, status: int, content_type: str
) -> None:
    link = site.page("/thing", b"\x89PNG", content_type, status=status)
    hn_item(site, {"id": 9, "type": "story", "title": "A picture", "url": link})
    (made,) = await (await make(urls_allow_private=True)).call(
        task("https://news.ycombinator.com/item?id=9")
    )
    assert made.data["title"] == "A picture"
    assert "article_text" not in made.data


async def test_a_linked_site_that_is_down_retries_the_whole_item(make: Make, site: Site) -> None:
    link = site.page("/down", "busy", "text/plain", status=503)
    hn_item(site, {"id": 10, "type": "story", "title": "Down", "url": link})
    with pytest.raises(HandlerFailed, match="503"):
        await (await make(urls_allow_private=True)).call(
            task("https://news.ycombinator.com/item?id=10")
        )


async def test_a_comment_is_archived_with_an_empty_title(make: Make, site: Site) -> None:
    hn_item(site, {"id": 11, "type": "comment", "by": "dang", "parent": 10, "text": "Fixed."})
    (made,) = await (await make()).call(task("https://news.ycombinator.com/item?id=11"))
    assert (made.data["title"], made.data["article_text"]) == ("", "Fixed.")


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        (None, "Hacker News item 42000001 does not exist"),
        ({"id": 42000001, "deleted": True, "type": "story"}, "was deleted"),
    ],
)
async def test_an_item_that_is_not_there_is_a_dead_letter(
    make: Make, site: Site, item: Any, reason: str
) -> None:
    hn_item(site, item)
    with pytest.raises(PoisonEvent, match=reason):
        await (await make()).call_example("task.url.ingest", name="minimal")


async def test_the_hn_api_being_down_is_retried(make: Make, site: Site) -> None:
    site.page("/v0/item/42000001.json", "{}", "application/json", status=502)
    with pytest.raises(HandlerFailed, match="502"):
        await (await make()).call_example("task.url.ingest", name="minimal")


# ── kinds ─────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("kind", "reason"),
    [("twitter", "is not an X/Twitter post"), ("hackernews", "is not a Hacker News item")],
)
async def test_a_kind_the_url_does_not_match_is_a_dead_letter(
    make: Make, kind: str, reason: str
) -> None:
    with pytest.raises(PoisonEvent, match=reason):
        await (await make()).call(task("https://example.org/page", kind=kind))


async def test_kind_pdf_fetches_even_a_post_url_as_a_pdf(make: Make, site: Site) -> None:
    site.page("/nasa/status/1861000000000000001", make_pdf(["Mission brief"]), "application/pdf")
    h = await make(resolve=hosts({"x.com": ["127.0.0.1"]}), urls_allowed_networks="127.0.0.1/32")
    url = f"http://x.com:{site.port}/nasa/status/1861000000000000001"
    (made,) = assert_emitted(await h.call(task(url, kind="pdf")), PDF, count=1)
    assert made.data["text"] == "Mission brief"
    assert site.paths() == ["/nasa/status/1861000000000000001"]  # no oEmbed question
