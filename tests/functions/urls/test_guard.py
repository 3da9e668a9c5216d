"""What the urls function refuses to fetch, and the limits it fetches within: addresses
(loopback, private, link-local…, also behind names and redirects), schemes,
credentials, size, time, redirects and status codes. All against real servers."""

from __future__ import annotations

import gzip
import ipaddress
import itertools
import time

import pytest

from functions.urls.address import IPAddress
from functions.urls.fetch import FetchFailed, UrlRefused
from loom.runtime.invoke import HandlerFailed, PoisonEvent
from loom.testing import assert_emitted
from tests.functions.urls.conftest import (
    Answer,
    Make,
    Site,
    closed_port,
    hosts,
    make_pdf,
    task,
)

PDF = "task.url.processed.pdf_extracted"
PDF_BYTES = make_pdf(["Quarterly numbers"], title="Numbers")


def serve_pdf(site: Site, path: str = "/doc.pdf") -> str:
    return site.page(path, PDF_BYTES, "application/pdf")


# ── addresses ────────────────────────────────────────────────────────────────


async def test_loopback_is_refused_unless_allowed(make: Make, site: Site) -> None:
    url = serve_pdf(site)
    with pytest.raises(PoisonEvent, match=r"127\.0\.0\.1 is a loopback address.*public"):
        await (await make()).call(task(url))
    assert site.asked == []  # not even connected to
    made = await (await make(urls_allow_private=True)).call(task(url))
    assert assert_emitted(made, PDF, count=1)[0].data["text"] == "Quarterly numbers"


async def test_an_allowed_network_opens_just_that_network(make: Make, site: Site) -> None:
    url = serve_pdf(site)
    assert await (await make(urls_allowed_networks="127.0.0.1/32")).call(task(url))
    with pytest.raises(PoisonEvent, match="loopback"):
        await (await make(urls_allowed_networks="10.0.0.0/8")).call(task(url))


@pytest.mark.parametrize(
    ("host", "kind"),
    [
        ("localhost", "loopback"),  # a name that resolves to loopback
        ("2130706433", "loopback"),  # 127.0.0.1 as one decimal number
        ("0x7f.1", "loopback"),  # ...and in hex shorthand
        ("[::1]", "loopback"),
        ("[::ffff:127.0.0.1]", "loopback"),  # IPv4-mapped IPv6
        ("10.1.2.3", "private"),
        ("192.168.0.10", "private"),
        ("[fd00::1]", "private"),
        ("169.254.169.254", "link-local"),  # cloud metadata
        ("[fe80::1]", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "reserved"),
    ],
)
async def test_addresses_that_are_not_public_are_refused(make: Make, host: str, kind: str) -> None:
    with pytest.raises(PoisonEvent, match=f"is a {kind} address"):
        await (await make()).call(task(f"http://{host}:8080/doc.pdf"))


@pytest.mark.parametrize("host", ["169.254.169.254", "0.0.0.0", "224.0.0.1", "[fe80::1]"])
async def test_allowing_private_networks_does_not_open_metadata_or_odd_addresses(
    make: Make, host: str
) -> None:
    with pytest.raises(PoisonEvent, match="address"):
        await (await make(urls_allow_private=True)).call(task(f"http://{host}/latest/meta-data"))


async def test_a_redirect_to_a_private_address_is_refused_and_never_followed(
    make: Make, site: Site, inner_site: Site
) -> None:
    secret = inner_site.page("/secret", "the router's password", "text/plain")
    url = site.redirect("/go", secret)
    h = await make(urls_allowed_networks="127.0.0.1/32")  # the site, and only it
    with pytest.raises(PoisonEvent, match=r"127\.0\.0\.2 is a loopback address"):
        await h.call(task(url))
    assert site.paths() == ["/go"]
    assert inner_site.asked == []


async def test_a_redirect_to_cloud_metadata_is_refused(make: Make, site: Site) -> None:
    url = site.redirect("/go", "http://169.254.169.254/latest/meta-data/", status=301)
    with pytest.raises(PoisonEvent, match="link-local"):
        await (await make(urls_allow_private=True)).call(task(url))


async def test_a_name_is_resolved_once_per_hop_and_the_checked_address_is_used(
    make: Make, site: Site, inner_site: Site
) -> None:
    """DNS rebinding: the name answers 127.0.0.1 when checked, 127.0.0.2 after. The
    request goes to the address that was checked, with the name as Host."""
    inner_site.page("/doc.pdf", b"%PDF-1.4 not this one", "application/pdf")
    serve_pdf(site)
    resolve = hosts({"archive.test": ["127.0.0.1", "127.0.0.2"]})
    h = await make(resolve=resolve, urls_allowed_networks="127.0.0.1/32")
    (made,) = await h.call(task(f"http://archive.test:{site.port}/doc.pdf"))
    assert made.data["text"] == "Quarterly numbers"
    assert made.data["url"] == f"http://archive.test:{site.port}/doc.pdf"
    assert [a["host"] for a in site.asked] == [f"archive.test:{site.port}"]
    assert inner_site.asked == []
    assert resolve.asked == {"archive.test": 1}  # type: ignore[attr-defined]
    # asked again, the name now answers the other address: refused, not connected to
    with pytest.raises(PoisonEvent, match=r"archive\.test resolves to 127\.0\.0\.2"):
        await h.call(task(f"http://archive.test:{site.port}/doc.pdf"))
    assert inner_site.asked == []


async def test_a_name_with_several_addresses_is_tried_address_by_address(
    make: Make, site: Site
) -> None:
    serve_pdf(site)

    async def resolve(host: str, port: int) -> list[IPAddress]:
        # nobody listens on 127.0.0.3; 10.9.9.9 is not allowed and never tried
        return [ipaddress.ip_address(a) for a in ("10.9.9.9", "127.0.0.3", "127.0.0.1")]

    h = await make(resolve=resolve, urls_allowed_networks="127.0.0.0/8")
    (made,) = await h.call(task(f"http://archive.test:{site.port}/doc.pdf"))
    assert made.data["page_count"] == 1
    assert [a["host"] for a in site.asked] == [f"archive.test:{site.port}"]


async def test_https_to_a_pinned_address_checks_the_certificate_for_the_name(
    make: Make, tls_site: tuple[Site, object]
) -> None:
    site, client = tls_site
    serve_pdf(site)
    resolve = hosts({"archive.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})
    h = await make(resolve=resolve, verify=client, urls_allowed_networks="127.0.0.1/32")
    (made,) = await h.call(task(f"https://archive.test:{site.port}/doc.pdf"))
    assert made.data["page_count"] == 1
    (asked,) = site.asked
    assert (asked["host"], asked["sni"]) == (f"archive.test:{site.port}", "archive.test")
    with pytest.raises(PoisonEvent, match=r"certificate is not valid for other\.test"):
        await h.call(task(f"https://other.test:{site.port}/doc.pdf"))


# ── URLs ─────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.org/doc.pdf", "only http and https"),
        ("file:///etc/passwd", "only http and https"),
        ("http://user:secret@example.org/doc.pdf", "credentials"),
        ("https://:8080/x", "not a valid URL|names no host"),
    ],
)
async def test_urls_that_are_not_fetched(make: Make, url: str, reason: str) -> None:
    with pytest.raises(PoisonEvent, match=reason):
        await (await make(urls_allow_private=True)).call(task(url))


# ── limits ───────────────────────────────────────────────────────────────────


async def test_redirects_are_followed_up_to_the_limit(make: Make, site: Site) -> None:
    serve_pdf(site)
    for n in range(3):
        site.redirect(f"/hop{n}", f"/hop{n + 1}" if n < 2 else "/doc.pdf")
    h = await make(urls_allow_private=True, urls_max_redirects=3)
    (made,) = await h.call(task(site.url("/hop0")))
    assert made.data["url"] == site.url("/doc.pdf")
    h = await make(urls_allow_private=True, urls_max_redirects=2)
    with pytest.raises(PoisonEvent, match="more than 2 redirects"):
        await h.call(task(site.url("/hop0")))


async def test_a_body_over_the_limit_is_refused_and_not_read_to_the_end(
    make: Make, site: Site
) -> None:
    sent = itertools.count()

    def endless() -> itertools.chain[bytes]:
        return itertools.chain([PDF_BYTES], (b"%" * 65536 for _ in iter(lambda: next(sent), -1)))

    site.answers["/huge.pdf"] = Answer(200, {"Content-Type": "application/pdf"}, chunks=endless())
    h = await make(urls_allow_private=True, urls_max_bytes=1_000_000)
    with pytest.raises(PoisonEvent, match=r"larger than 1000000 bytes \(LOOM_URLS_MAX_BYTES\)"):
        await h.call(task(site.url("/huge.pdf")))
    assert next(sent) < 100  # it stopped reading (a few MB at most were sent)


async def test_a_declared_length_over_the_limit_is_refused_up_front(make: Make, site: Site) -> None:
    site.answers["/big.pdf"] = Answer(
        200, {"Content-Type": "application/pdf", "Content-Length": "50000000"}, PDF_BYTES
    )
    with pytest.raises(PoisonEvent, match="larger than"):
        await (await make(urls_allow_private=True, urls_max_bytes=1_000_000)).call(
            task(site.url("/big.pdf"))
        )


async def test_a_compressed_body_is_limited_by_its_decompressed_size(
    make: Make, site: Site
) -> None:
    bomb = gzip.compress(PDF_BYTES + b"\0" * 5_000_000)  # ~5 KB on the wire
    site.page("/bomb.pdf", bomb, "application/pdf", **{"Content-Encoding": "gzip"})
    with pytest.raises(PoisonEvent, match="larger than 1000000 bytes"):
        await (await make(urls_allow_private=True, urls_max_bytes=1_000_000)).call(
            task(site.url("/bomb.pdf"))
        )


async def test_a_slow_body_is_given_up_at_the_total_time_and_retried(
    make: Make, site: Site
) -> None:
    trickle = [PDF_BYTES[:20]] + [b" "] * 100
    site.answers["/slow.pdf"] = Answer(200, {"Content-Type": "application/pdf"},
                                       chunks=trickle, pause=0.1)  # fmt: skip
    h = await make(urls_allow_private=True, urls_total_timeout_seconds=0.5)
    started = time.perf_counter()
    with pytest.raises(FetchFailed, match=r"took longer than 0\.5 s"):
        await h.call(task(site.url("/slow.pdf")))
    assert time.perf_counter() - started < 2


async def test_a_stalled_answer_hits_the_read_timeout(make: Make, site: Site) -> None:
    site.answers["/stall.pdf"] = Answer(200, {"Content-Type": "application/pdf"},
                                        chunks=[PDF_BYTES[:20], b""], pause=3)  # fmt: skip
    h = await make(urls_allow_private=True, urls_read_timeout_seconds=0.3)
    with pytest.raises(HandlerFailed, match="stalled"):
        await h.call(task(site.url("/stall.pdf")))


# ── status codes and connections ─────────────────────────────────────────────


@pytest.mark.parametrize(
    ("status", "error", "reason"),
    [
        (404, UrlRefused, "404 Not Found: it is not there"),
        (410, UrlRefused, "410 Gone"),
        (403, UrlRefused, "403 Forbidden"),
        (429, FetchFailed, "429 Too Many Requests; it may pass"),
        (500, FetchFailed, "500 Internal Server Error"),
        (503, FetchFailed, "503 Service Unavailable"),
    ],
)
async def test_gone_is_a_dead_letter_and_a_server_in_trouble_is_retried(
    make: Make, site: Site, status: int, error: type[Exception], reason: str
) -> None:
    site.page("/doc.pdf", b"nope", "text/plain", status=status)
    with pytest.raises(error, match=reason):
        await (await make(urls_allow_private=True)).call(task(site.url("/doc.pdf")))
    assert issubclass(error, PoisonEvent) == (status in (403, 404, 410))


async def test_a_refused_connection_is_retried(make: Make) -> None:
    url = f"http://127.0.0.1:{closed_port()}/doc.pdf"
    with pytest.raises(HandlerFailed, match="cannot connect"):
        await (await make(urls_allow_private=True)).call(task(url))


async def test_every_request_names_loom_as_its_user_agent(make: Make, site: Site) -> None:
    serve_pdf(site)
    h = await make(urls_allow_private=True, urls_user_agent="my-archive/2.0")
    await h.call(task(site.url("/doc.pdf")))
    assert [a["user_agent"] for a in site.asked] == ["my-archive/2.0"]
