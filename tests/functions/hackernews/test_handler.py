"""What a person sees of the hackernews function: the readable text of each liked item's
page (or of the post itself), an empty text that says why when a page cannot be read,
a retry when the site is down, and no fetch from addresses that are not public."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from functions.hackernews.fetcher import LIKED, fetch
from functions.hackernews.handler import CONTENT, handle
from functions.hackernews.web import AddressRefused, PageFetcher, TryLater, address_refusal
from loom.runtime.event import Event
from loom.runtime.invoke import HandlerFailed, PoisonEvent
from loom.runtime.registry import Registry
from loom.testing import FetcherHarness, FunctionHarness, InMemoryBroker, assert_emitted
from tests.functions.hackernews.conftest import FakeHackerNews

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


@pytest.fixture
async def make(hn: FakeHackerNews) -> AsyncIterator[Make]:
    """The function with its lifespan open, on the stand-in (loopback allowed unless said)."""
    opened: list[FunctionHarness] = []

    async def build(**settings: Any) -> FunctionHarness:
        settings.setdefault("hackernews_allow_private", True)
        harness = FunctionHarness(handle, settings=hn.settings(**settings))
        opened.append(await harness.__aenter__())
        return harness

    yield build
    for harness in opened:
        await harness.__aexit__(None, None, None)


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
    with pytest.raises(HandlerFailed, match=f"answered {status}; trying again later"):
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


async def test_a_name_is_judged_by_every_address_it_resolves_to() -> None:
    async def resolve(host: str, port: int) -> list[Any]:
        return [ipaddress.ip_address("93.184.215.14"), ipaddress.ip_address("10.0.0.7")]

    pages = PageFetcher(user_agent="t", max_bytes=1024, timeout=1, max_redirects=0,
                        resolve=resolve)  # fmt: skip
    try:
        with pytest.raises(AddressRefused, match=r"intranet.example \(10.0.0.7\) is a private"):
            await pages.get("http://intranet.example/")
    finally:
        await pages.aclose()


@pytest.mark.parametrize(
    ("errno", "outcome"), [(socket.EAI_NONAME, "gone"), (socket.EAI_AGAIN, "later")]
)
async def test_a_host_that_does_not_exist_is_not_asked_again(errno: int, outcome: str) -> None:
    async def resolve(host: str, port: int) -> list[Any]:
        raise socket.gaierror(errno, "no")

    pages = PageFetcher(user_agent="t", max_bytes=1024, timeout=1, max_redirects=0,
                        resolve=resolve)  # fmt: skip
    try:
        if outcome == "gone":
            fetched = await pages.get("https://gone.example/post")
            assert (fetched.body, fetched.problem) == (b"", "the host gone.example does not exist")
        else:
            with pytest.raises(TryLater, match="cannot resolve"):
                await pages.get("https://flaky.example/post")
    finally:
        await pages.aclose()


@pytest.mark.parametrize("url", ["ftp://example.org/file", "file:///etc/passwd",
                                 "http://user:pw@example.org/"])  # fmt: skip
async def test_only_plain_http_urls_are_fetched(make: Make, url: str) -> None:
    with pytest.raises(PoisonEvent, match=r"(are|are not) fetched"):
        await (await make()).call(liked(42_000_001, url))


@pytest.mark.parametrize(
    ("address", "kind", "kind_if_private_allowed"),
    [
        ("93.184.215.14", None, None),
        ("2606:2800:21f:cb07:6820:80da:af6b:8b2c", None, None),
        ("127.0.0.1", "loopback", None),
        ("::1", "loopback", None),
        ("::ffff:127.0.0.1", "loopback", None),
        ("64:ff9b::7f00:1", "loopback", None),
        ("10.1.2.3", "private", None),
        ("192.168.1.20", "private", None),
        ("100.64.0.1", "private", None),
        ("fd00::1", "private", None),
        ("169.254.169.254", "link-local", "link-local"),
        ("fe80::1", "link-local", "link-local"),
        ("0.0.0.0", "unspecified", "unspecified"),
        ("224.0.0.1", "multicast", "multicast"),
        ("192.0.2.1", "reserved", "reserved"),
    ],
)
def test_which_addresses_are_refused(
    address: str, kind: str | None, kind_if_private_allowed: str | None
) -> None:
    ip = ipaddress.ip_address(address)
    assert address_refusal(ip) == kind
    assert address_refusal(ip, allow_private=True) == kind_if_private_allowed


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
