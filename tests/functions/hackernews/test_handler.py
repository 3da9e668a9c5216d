"""What a person sees of the hackernews function: the readable text of each liked item's
page (or of the post itself), an empty text that says why when a page cannot be read,
a retry when the site is down, and no fetch from addresses that are not public."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from typing import Any

import pytest

from functions.hackernews.fetcher import LIKED, fetch
from functions.hackernews.handler import CONTENT, AddressRefused, TryLater, handle, open_reader
from functions.hackernews.settings import HackerNewsSettings
from loom.runtime.event import Event
from loom.runtime.invoke import HandlerFailed, PoisonEvent
from loom.runtime.registry import Registry
from loom.testing import FetcherHarness, FunctionHarness, InMemoryBroker, assert_emitted
from loom.web import AddressPolicy, Extractor, IPAddress, Resolver, system_resolve
from tests.functions.hackernews.conftest import FakeHackerNews
from tests.functions.urls.conftest import make_pdf, slow_pdf

ARTICLE = """<!doctype html><html><head><meta charset="utf-8">
<title>Loom: a tiny event pipeline | Example Blog</title></head><body>
<nav><a href="/">Home</a> | <a href="/about">About</a> | <a href="/rss">RSS</a></nav>
<article><h1>Loom: a tiny event pipeline</h1><p class="byline">By Ada, 25 November 2026</p>
<p>Loom collects events from your devices and keeps them in one place. It is small, and
it runs on one laptop with no cluster at all, which is much of the point of it.</p>
<p>Each event goes through a graph of small functions; every derived event is stored
too, so that a person can replay their own history and rebuild what was derived.</p>
<p>Straße, café and naïve words keep their letters.</p></article>
<footer>Copyright 2026 Example Blog. All rights reserved.</footer></body></html>"""

Make = Callable[..., Awaitable[FunctionHarness]]


@pytest.fixture(scope="session")
def extractor() -> Iterator[Extractor]:
    """The extracting workers of the default settings, shared (started on first need)."""
    with contextlib.closing(HackerNewsSettings().extractor()) as workers:
        yield workers


@pytest.fixture
async def make(hn: FakeHackerNews, extractor: Extractor) -> AsyncIterator[Make]:
    """The function with its lifespan open, on the stand-in (loopback allowed unless said);
    ``resolve`` answers for the names of linked pages instead of the system. The shared
    extracting workers are used unless a ``hackernews_extract_*`` setting is given."""
    async with AsyncExitStack() as stack:

        async def build(*, resolve: Resolver = system_resolve, **settings: Any) -> FunctionHarness:
            settings.setdefault("hackernews_allow_private", True)
            config = hn.settings(**settings)
            own = any(name.startswith("hackernews_extract_") for name in settings)
            opened = open_reader(config, resolve=resolve, extractor=None if own else extractor)
            state = await stack.enter_async_context(opened)
            return FunctionHarness(handle, settings=config, state=state)

        yield build


def liked(item_id: int, url: str | None = None, title: str = "Show HN: Loom") -> Event:
    data: dict[str, Any] = {"schema_version": "1.0", "timestamp": "2026-11-25T08:15:30.123Z",
                            "message_id": f"hn-favorite-{item_id}", "account": "ada_hn",
                            "item_id": item_id, "title": title,
                            "liked_at": "2026-11-25T08:15:30.123Z"}  # fmt: skip
    if url is not None:
        data["url"] = url
    return Event(type=LIKED, data=data, source="/loom/fetchers/hackernews")


async def test_an_article_gives_its_readable_text(hn: FakeHackerNews, make: Make) -> None:
    url = hn.serve("/blog/loom", ARTICLE, "text/html; charset=utf-8")
    event = liked(42_000_001, url)
    (out,) = assert_emitted(await (await make()).call(event), CONTENT, count=1)
    data = out.data
    assert "Loom collects events from your devices" in data["text"]
    assert "replay their own history" in data["text"]
    assert "Straße, café and naïve" in data["text"]
    assert "All rights reserved" not in data["text"]  # boilerplate is left out
    assert "About" not in data["text"]
    assert data["title"].startswith("Loom: a tiny event pipeline")
    assert (data["url"], data["http_status"]) == (url, 200)
    assert data["content_type"] == "text/html; charset=utf-8"
    assert (data["item_id"], data["account"]) == (42_000_001, "ada_hn")
    assert data["derived_from"] == {"type": LIKED, "source": event.source, "id": event.id}
    assert out.id == event.derive(CONTENT, {}, source="/loom/functions/hackernews").id
    (asked,) = hn.requests("/blog/loom")
    assert asked.user_agent == "loom-hackernews/1.0 (personal archive)"


async def test_an_ask_hn_post_gives_its_own_text(hn: FakeHackerNews, make: Make) -> None:
    (out,) = await (await make()).call(liked(42_000_002, title="Ask HN: Question number 2?"))
    assert (
        out.data["text"]
        == "I have tried paper, Org mode and a spreadsheet (2).\n\nWhat do you use?"
    )
    assert out.data["url"] == f"{hn.url}/item?id=42000002"
    assert out.data["title"] == "Ask HN: Question number 2?"
    assert "http_status" not in out.data


async def test_a_deleted_post_gives_an_empty_text(hn: FakeHackerNews, make: Make) -> None:
    (out,) = await (await make()).call(liked(42_999_999, title="Ask HN: gone"))
    assert (out.data["text"], out.data["title"]) == ("", "Ask HN: gone")


async def test_a_pdf_gives_its_text(hn: FakeHackerNews, make: Make) -> None:
    url = hn.serve("/paper.pdf", tiny_pdf("Hello from a PDF"), "application/pdf")
    (out,) = await (await make()).call(liked(42_000_001, url))
    assert out.data["text"] == "Hello from a PDF"
    assert out.data["title"] == "A tiny paper"


async def test_plain_text_is_kept_as_it_is(hn: FakeHackerNews, make: Make) -> None:
    url = hn.serve("/notes.txt", "Grüße\nfrom a text file".encode("latin-1"),
                   "text/plain; charset=ISO-8859-1")  # fmt: skip
    (out,) = await (await make()).call(liked(42_000_001, url, "Notes"))
    assert (out.data["text"], out.data["title"]) == ("Grüße\nfrom a text file", "Notes")


async def test_redirects_are_followed(hn: FakeHackerNews, make: Make) -> None:
    final = hn.serve("/blog/loom", ARTICLE)
    url = hn.serve("/old", "", status=301, Location="/blog/loom")
    (out,) = await (await make()).call(liked(42_000_001, url))
    assert out.data["url"] == final
    assert "Loom collects events" in out.data["text"]


@pytest.mark.parametrize(
    ("status", "content_type", "body", "settings"),
    [
        (404, "text/html", "Not found", {}),
        (410, "text/html", "Gone", {}),
        (200, "image/png", b"\x89PNG\r\n\x1a\n" + bytes(5000), {}),
        (200, "text/html", "<p>" + "x" * 5000 + "</p>", {"hackernews_fetch_max_bytes": 1024}),
    ],
    ids=["not-found", "gone", "an-image", "too-large"],
)
async def test_a_page_that_cannot_be_read_gives_an_empty_text(
    hn: FakeHackerNews, make: Make, status: int, content_type: str, body: str | bytes,
    settings: dict[str, Any],
) -> None:  # fmt: skip
    url = hn.serve("/page", body, content_type, status=status)
    (out,) = await (await make(**settings)).call(liked(42_000_001, url, "Show HN: Loom"))
    assert out.data["text"] == ""
    assert out.data["title"] == "Show HN: Loom"  # the item's own title stays
    assert (out.data["http_status"], out.data["content_type"]) == (status, content_type)


async def test_a_pdf_too_slow_to_read_gives_an_empty_text(hn: FakeHackerNews, make: Make) -> None:
    url = hn.serve("/slow.pdf", slow_pdf(), "application/pdf")  # 3 KB, half a minute of pypdf
    h = await make(hackernews_extract_timeout_seconds=0.5, hackernews_extract_workers=1)
    (out,) = await h.call(liked(42_000_001, url, "Show HN: Slow"))
    assert (out.data["text"], out.data["title"]) == ("", "Show HN: Slow")
    assert (out.data["http_status"], out.data["content_type"]) == (200, "application/pdf")
    after = hn.serve("/paper.pdf", tiny_pdf("Hello from a PDF"), "application/pdf")
    (again,) = await h.call(liked(42_000_003, after))  # another worker took its place
    assert again.data["text"] == "Hello from a PDF"


async def test_only_the_first_pages_of_a_long_pdf_are_read(hn: FakeHackerNews, make: Make) -> None:
    url = hn.serve("/book.pdf", make_pdf([f"Chapter {n}" for n in range(1, 6)]), "application/pdf")
    (out,) = await (await make(hackernews_max_pdf_pages=2)).call(liked(42_000_001, url))
    assert out.data["text"] == "Chapter 1\n\nChapter 2"


async def test_too_many_redirects_give_an_empty_text(hn: FakeHackerNews, make: Make) -> None:
    url = hn.serve("/loop", "", status=302, Location="/loop")
    (out,) = await (await make(hackernews_fetch_max_redirects=2)).call(liked(42_000_001, url))
    assert out.data["text"] == ""
    assert len(hn.requests("/loop")) == 3


@pytest.mark.parametrize("status", [500, 503, 429])
async def test_a_failing_site_is_tried_again_later(
    hn: FakeHackerNews, make: Make, status: int
) -> None:
    url = hn.serve("/busy", "Sorry", status=status)
    with pytest.raises(TryLater, match=f"answered {status} .*; it may pass"):
        await (await make()).call(liked(42_000_001, url))


async def test_a_slow_site_is_tried_again_later(hn: FakeHackerNews, make: Make) -> None:
    url = hn.serve("/slow", ARTICLE)
    hn.delay = 1.0
    with pytest.raises(HandlerFailed, match=r"took longer than 0\.3 s"):
        await (await make(hackernews_fetch_timeout_seconds=0.3)).call(liked(42_000_001, url))


async def test_a_site_that_is_down_is_tried_again_later(make: Make) -> None:
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with pytest.raises(HandlerFailed, match="cannot connect"):
        await (await make()).call(liked(42_000_001, f"http://127.0.0.1:{port}/"))


# ── addresses ────────────────────────────────────────────────────────────────


async def test_loopback_is_refused_unless_allowed(hn: FakeHackerNews, make: Make) -> None:
    url = hn.serve("/blog/loom", ARTICLE)
    h = await make(hackernews_allow_private=False)
    with pytest.raises(PoisonEvent, match=r"127\.0\.0\.1 is a loopback address") as info:
        await h.call(liked(42_000_001, url))
    assert "LOOM_HACKERNEWS_ALLOW_PRIVATE" in str(info.value)
    assert hn.requests("/blog/loom") == []  # never asked


async def test_a_redirect_to_cloud_metadata_is_refused_even_when_private_is_allowed(
    hn: FakeHackerNews, make: Make
) -> None:
    url = hn.serve("/innocent", "", status=302, Location="http://169.254.169.254/latest/")
    with pytest.raises(PoisonEvent, match="link-local"):
        await (await make(hackernews_allow_private=True)).call(liked(42_000_001, url))


async def test_a_host_that_does_not_exist_gives_an_empty_text(make: Make) -> None:
    async def resolve(host: str, port: int) -> list[IPAddress]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    h = await make(resolve=resolve)
    (out,) = await h.call(liked(42_000_001, "https://gone.example/post", "Show HN: Gone"))
    assert (out.data["text"], out.data["title"]) == ("", "Show HN: Gone")
    assert out.data["url"] == "https://gone.example/post"
    assert "http_status" not in out.data


async def test_a_name_that_resolves_to_a_private_address_is_a_dead_letter(make: Make) -> None:
    async def resolve(host: str, port: int) -> list[IPAddress]:
        return [ipaddress.ip_address("10.0.0.7")]

    with pytest.raises(AddressRefused, match=r"intranet\.example resolves to 10\.0\.0\.7"):
        await (await make(resolve=resolve, hackernews_allow_private=False)).call(
            liked(42_000_001, "http://intranet.example/")
        )


@pytest.mark.parametrize("url", ["ftp://example.org/file", "file:///etc/passwd",
                                 "http://user:pw@example.org/"])  # fmt: skip
async def test_only_plain_http_urls_are_fetched(make: Make, url: str) -> None:
    with pytest.raises(PoisonEvent, match=r"(are|are not) fetched"):
        await (await make()).call(liked(42_000_001, url))


def test_the_settings_become_the_fetchers_options() -> None:
    config = HackerNewsSettings(hackernews_fetch_max_bytes=4096,
                                hackernews_fetch_timeout_seconds=45,
                                hackernews_fetch_max_redirects=2,
                                hackernews_allow_private=True)  # fmt: skip
    options = config.page_options()
    assert (options.max_bytes, options.max_redirects) == (4096, 2)
    assert options.total_timeout_seconds == 45
    assert (options.connect_timeout_seconds, options.read_timeout_seconds) == (20, 20)
    assert options.policy == AddressPolicy(allow_private=True)
    assert options.user_agent == "loom-hackernews/1.0 (personal archive)"
    assert (options.accept or "").startswith("text/html")
    assert options.named("policy") == " (LOOM_HACKERNEWS_ALLOW_PRIVATE)"
    assert options.named("max_bytes") == " (LOOM_HACKERNEWS_FETCH_MAX_BYTES)"


def test_the_settings_become_the_extractors_limits() -> None:
    config = HackerNewsSettings(hackernews_extract_timeout_seconds=7,
                                hackernews_extract_workers=3)  # fmt: skip
    extractor = config.extractor()
    assert (extractor.timeout_seconds, extractor.workers) == (7, 3)
    assert extractor.setting == "LOOM_HACKERNEWS_EXTRACT_TIMEOUT_SECONDS"


# ── the two together ─────────────────────────────────────────────────────────


async def test_every_liked_item_gets_its_content(hn: FakeHackerNews) -> None:
    for n in (1, 3, 4, 6, 7):
        hn.serve(f"/articles/{n}", ARTICLE.replace("Loom:", f"Project {n}:"))
    settings = hn.settings({"username": "ada_hn"}, hackernews_allow_private=True)
    fetcher = FetcherHarness(fetch, settings=settings)
    await fetcher.run()
    registry = Registry()
    registry.add(handle.spec)
    broker = InMemoryBroker(registry, settings=settings)
    for event in fetcher.events:
        broker.publish(event)
    await broker.run()
    contents = broker.events(CONTENT)
    assert broker.dead_letters == []
    assert sorted(c.data["item_id"] for c in contents) == sorted(hn.favorites["ada_hn"])
    assert all(c.data["text"] for c in contents)
    by_id = {c.data["item_id"]: c.data for c in contents}
    assert by_id[42_000_006]["title"].startswith("Project 6: a tiny event pipeline")


def tiny_pdf(text: str) -> bytes:
    """A one-page PDF showing ``text`` in Helvetica, titled "A tiny paper"."""
    stream = f"BT /F1 18 Tf 20 100 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 144] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Title (A tiny paper) >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (n, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info 6 0 R >>\n" % (len(objects) + 1)
    out += b"startxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)
