"""What the guarded fetcher refuses to fetch, and the limits it fetches within: addresses
(loopback, private, link-local…, also behind names and redirects), schemes,
credentials, size, time, redirects and status codes; and what its errors say (permanent
or not, why, the status and content type). All against real servers."""

from __future__ import annotations

import gzip
import ipaddress
import itertools
import socket
import ssl
import time
import tracemalloc
import zlib
from collections.abc import Callable

import pytest

from loom.errors import LoomError
from loom.web import AddressPolicy, FetchFailed, FetchOptions, FetchRefused, IPAddress, check_url
from tests.loom.web.conftest import LOCAL, Answer, Make, Site, closed_port, hosts

BODY = b"%PDF-1.4 Quarterly numbers"


def only(network: str) -> AddressPolicy:
    """Public addresses and ``network``, nothing else."""
    return AddressPolicy.of(False, [ipaddress.ip_network(network)])


# ── addresses ────────────────────────────────────────────────────────────────


async def test_loopback_is_refused_unless_allowed(fetcher: Make, site: Site) -> None:
    url = site.page("/doc", BODY, "application/pdf")
    strict = await fetcher(names={"policy": "LOOM_X_ALLOW_PRIVATE"})
    with pytest.raises(FetchRefused, match=r"127\.0\.0\.1 is a loopback address.*public") as info:
        await strict.get(url)
    assert "(LOOM_X_ALLOW_PRIVATE)" in str(info.value)
    assert (info.value.reason, info.value.permanent, info.value.status) == ("address", True, None)
    assert site.asked == []  # not even connected to
    assert (await (await fetcher(policy=LOCAL)).get(url)).body == BODY


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
async def test_addresses_that_are_not_public_are_refused(
    fetcher: Make, host: str, kind: str
) -> None:
    with pytest.raises(FetchRefused, match=f"is a {kind} address") as info:
        await (await fetcher()).get(f"http://{host}:8080/doc.pdf")
    assert info.value.reason == "address"


@pytest.mark.parametrize("host", ["169.254.169.254", "0.0.0.0", "224.0.0.1", "[fe80::1]"])
async def test_allowing_private_networks_does_not_open_metadata_or_odd_addresses(
    fetcher: Make, host: str
) -> None:
    with pytest.raises(FetchRefused, match="address"):
        await (await fetcher(policy=LOCAL)).get(f"http://{host}/latest/meta-data")


async def test_a_redirect_to_a_private_address_is_refused_and_never_followed(
    fetcher: Make, site: Site, inner_site: Site
) -> None:
    secret = inner_site.page("/secret", "the router's password", "text/plain")
    url = site.redirect("/go", secret)
    f = await fetcher(policy=only("127.0.0.1/32"))  # the site, and only it
    with pytest.raises(FetchRefused, match=r"127\.0\.0\.2 is a loopback address") as info:
        await f.get(url)
    assert info.value.url == secret  # where it stopped
    assert site.paths() == ["/go"]
    assert inner_site.asked == []


async def test_a_redirect_to_cloud_metadata_is_refused(fetcher: Make, site: Site) -> None:
    url = site.redirect("/go", "http://169.254.169.254/latest/meta-data/", status=301)
    with pytest.raises(FetchRefused, match="link-local"):
        await (await fetcher(policy=LOCAL)).get(url)


async def test_a_name_is_resolved_once_per_hop_and_the_checked_address_is_used(
    fetcher: Make, site: Site, inner_site: Site
) -> None:
    """DNS rebinding: the name answers 127.0.0.1 when checked, 127.0.0.2 after. The
    request goes to the address that was checked, with the name as Host."""
    inner_site.page("/doc.pdf", b"%PDF-1.4 not this one", "application/pdf")
    site.page("/doc.pdf", BODY, "application/pdf")
    resolve = hosts({"archive.test": ["127.0.0.1", "127.0.0.2"]})
    f = await fetcher(resolve=resolve, policy=only("127.0.0.1/32"))
    fetched = await f.get(f"http://archive.test:{site.port}/doc.pdf")
    assert fetched.body == BODY
    assert fetched.url == f"http://archive.test:{site.port}/doc.pdf"
    assert [a["host"] for a in site.asked] == [f"archive.test:{site.port}"]
    assert inner_site.asked == []
    assert resolve.asked == {"archive.test": 1}  # type: ignore[attr-defined]
    # asked again, the name now answers the other address: refused, not connected to
    with pytest.raises(FetchRefused, match=r"archive\.test resolves to 127\.0\.0\.2"):
        await f.get(f"http://archive.test:{site.port}/doc.pdf")
    assert inner_site.asked == []


async def test_a_name_with_several_addresses_is_tried_address_by_address(
    fetcher: Make, site: Site
) -> None:
    site.page("/doc.pdf", BODY, "application/pdf")

    async def resolve(host: str, port: int) -> list[IPAddress]:
        # nobody listens on 127.0.0.3; 10.9.9.9 is not allowed and never tried
        return [ipaddress.ip_address(a) for a in ("10.9.9.9", "127.0.0.3", "127.0.0.1")]

    f = await fetcher(resolve=resolve, policy=only("127.0.0.0/8"))
    assert (await f.get(f"http://archive.test:{site.port}/doc.pdf")).body == BODY
    assert [a["host"] for a in site.asked] == [f"archive.test:{site.port}"]


async def test_a_name_is_judged_by_every_address_it_resolves_to(fetcher: Make) -> None:
    """None of its addresses allowed: refused, naming the first, and never connected to."""

    async def resolve(host: str, port: int) -> list[IPAddress]:
        return [ipaddress.ip_address("10.0.0.7"), ipaddress.ip_address("192.168.1.20")]

    f = await fetcher(resolve=resolve)
    with pytest.raises(FetchRefused, match=r"intranet\.example resolves to 10\.0\.0\.7, which "
                       r"is a private address"):  # fmt: skip
        await f.get("http://intranet.example/")


async def test_https_to_a_pinned_address_checks_the_certificate_for_the_name(
    fetcher: Make, tls_site: tuple[Site, ssl.SSLContext]
) -> None:
    site, client = tls_site
    site.page("/doc.pdf", BODY, "application/pdf")
    resolve = hosts({"archive.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})
    f = await fetcher(resolve=resolve, verify=client, policy=only("127.0.0.1/32"))
    assert (await f.get(f"https://archive.test:{site.port}/doc.pdf")).body == BODY
    (asked,) = site.asked
    assert (asked["host"], asked["sni"]) == (f"archive.test:{site.port}", "archive.test")
    with pytest.raises(FetchRefused, match=r"certificate is not valid for other\.test") as info:
        await f.get(f"https://other.test:{site.port}/doc.pdf")
    assert info.value.reason == "certificate"


@pytest.mark.parametrize(
    ("errno", "outcome"), [(socket.EAI_NONAME, "gone"), (socket.EAI_AGAIN, "later")]
)
async def test_a_host_that_does_not_exist_is_not_asked_again(
    fetcher: Make, errno: int, outcome: str
) -> None:
    async def resolve(host: str, port: int) -> list[IPAddress]:
        raise socket.gaierror(errno, "no")

    f = await fetcher(resolve=resolve)
    if outcome == "gone":
        with pytest.raises(FetchRefused, match=r"the host gone\.example does not exist") as info:
            await f.get("https://gone.example/post")
        assert info.value.reason == "host"
    else:
        with pytest.raises(FetchFailed, match="cannot resolve") as failed:
            await f.get("https://flaky.example/post")
        assert not failed.value.permanent


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
async def test_urls_that_are_not_fetched(fetcher: Make, url: str, reason: str) -> None:
    with pytest.raises(FetchRefused, match=reason) as info:
        check_url(url)
    assert info.value.reason == "url"
    with pytest.raises(FetchRefused, match=reason):
        await (await fetcher(policy=LOCAL)).get(url)


def test_a_url_loses_its_fragment() -> None:
    assert str(check_url("https://example.org/a?b=1#section")) == "https://example.org/a?b=1"


# ── limits ───────────────────────────────────────────────────────────────────


async def test_redirects_are_followed_up_to_the_limit(fetcher: Make, site: Site) -> None:
    site.page("/doc.pdf", BODY, "application/pdf")
    for n in range(3):
        site.redirect(f"/hop{n}", f"/hop{n + 1}" if n < 2 else "/doc.pdf")
    f = await fetcher(policy=LOCAL, max_redirects=3)
    fetched = await f.get(site.url("/hop0"))
    assert (fetched.url, fetched.status, fetched.body) == (site.url("/doc.pdf"), 200, BODY)
    f = await fetcher(policy=LOCAL, max_redirects=2, names={"max_redirects": "LOOM_X_REDIRECTS"})
    with pytest.raises(FetchRefused, match=r"more than 2 redirects \(LOOM_X_REDIRECTS\)") as info:
        await f.get(site.url("/hop0"))
    assert (info.value.reason, info.value.url) == ("redirects", site.url("/doc.pdf"))


async def test_a_body_over_the_limit_is_refused_and_not_read_to_the_end(
    fetcher: Make, site: Site
) -> None:
    sent = itertools.count()

    def endless() -> itertools.chain[bytes]:
        return itertools.chain([BODY], (b"%" * 65536 for _ in iter(lambda: next(sent), -1)))

    site.answers["/huge.pdf"] = Answer(200, {"Content-Type": "application/pdf"}, chunks=endless())
    f = await fetcher(policy=LOCAL, max_bytes=1_000_000, names={"max_bytes": "LOOM_X_MAX_BYTES"})
    with pytest.raises(
        FetchRefused, match=r"larger than 1000000 bytes \(LOOM_X_MAX_BYTES\)"
    ) as info:
        await f.get(site.url("/huge.pdf"))
    assert next(sent) < 100  # it stopped reading (a few MB at most were sent)
    error = info.value
    assert (error.reason, error.status, error.content_type) == ("too_large", 200, "application/pdf")


async def test_a_declared_length_over_the_limit_is_refused_up_front(
    fetcher: Make, site: Site
) -> None:
    site.answers["/big.pdf"] = Answer(
        200, {"Content-Type": "application/pdf", "Content-Length": "50000000"}, BODY
    )
    with pytest.raises(FetchRefused, match="larger than") as info:
        await (await fetcher(policy=LOCAL, max_bytes=1_000_000)).get(site.url("/big.pdf"))
    assert info.value.reason == "too_large"


async def test_a_compressed_body_is_limited_by_its_decompressed_size(
    fetcher: Make, site: Site
) -> None:
    bomb = gzip.compress(BODY + b"\0" * 5_000_000)  # ~5 KB on the wire
    site.page("/bomb.pdf", bomb, "application/pdf", **{"Content-Encoding": "gzip"})
    with pytest.raises(FetchRefused, match="larger than 1000000 bytes"):
        await (await fetcher(policy=LOCAL, max_bytes=1_000_000)).get(site.url("/bomb.pdf"))


async def test_a_compressed_bomb_never_holds_much_more_than_the_limit_in_memory(
    fetcher: Make, site: Site
) -> None:
    packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    zeros = b"\0" * (1 << 20)
    bomb = b"".join(packer.compress(zeros) for _ in range(256)) + packer.flush()  # 256 MiB
    site.page("/bomb.html", bomb, "text/html", **{"Content-Encoding": "gzip"})
    f = await fetcher(policy=LOCAL, max_bytes=2_000_000)
    tracemalloc.start()
    try:
        with pytest.raises(FetchRefused, match="larger than 2000000 bytes") as info:
            await f.get(site.url("/bomb.html"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.value.reason == "too_large"
    assert peak < 2_000_000 + 3 * 1024 * 1024  # the body so far, and a few pieces besides


@pytest.mark.parametrize(
    ("coding", "pack"),
    [
        ("gzip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("deflate", zlib.compress),  # zlib's wrapper, as the RFC says
        ("deflate", lambda data: zlib.compress(data)[2:-4]),  # raw, as some servers send it
        ("identity", lambda data: data),
    ],
)
async def test_compressed_bodies_are_read_whole(
    fetcher: Make, site: Site, coding: str, pack: Callable[[bytes], bytes]
) -> None:
    text = b"<p>" + b"Loom keeps what your devices see. " * 40_000 + b"</p>"  # 1.4 MB
    site.page("/page", pack(text), "text/html", **{"Content-Encoding": coding})
    fetched = await (await fetcher(policy=LOCAL, max_bytes=len(text))).get(site.url("/page"))
    assert fetched.body == text
    assert site.asked[0]["accept_encoding"] == "gzip, deflate"  # only what is read here


async def test_a_body_compressed_twice_over_is_not_undone(fetcher: Make, site: Site) -> None:
    twice = gzip.compress(gzip.compress(b"\0" * 1_000_000))
    site.page("/twice", twice, "text/html", **{"Content-Encoding": "gzip, gzip"})
    with pytest.raises(FetchRefused, match="compressed 2 times over") as info:
        await (await fetcher(policy=LOCAL)).get(site.url("/twice"))
    assert info.value.reason == "undecodable"


async def test_a_broken_compressed_body_cannot_be_decoded(fetcher: Make, site: Site) -> None:
    site.page("/broken", b"not gzip at all", "text/html", **{"Content-Encoding": "gzip"})
    with pytest.raises(FetchRefused, match="cannot be decoded") as info:
        await (await fetcher(policy=LOCAL)).get(site.url("/broken"))
    assert (info.value.reason, info.value.status) == ("undecodable", 200)


async def test_a_slow_body_is_given_up_at_the_total_time(fetcher: Make, site: Site) -> None:
    trickle = [BODY[:20]] + [b" "] * 100
    site.answers["/slow.pdf"] = Answer(200, {"Content-Type": "application/pdf"},
                                       chunks=trickle, pause=0.1)  # fmt: skip
    f = await fetcher(policy=LOCAL, total_timeout_seconds=0.5)
    started = time.perf_counter()
    with pytest.raises(FetchFailed, match=r"took longer than 0\.5 s") as info:
        await f.get(site.url("/slow.pdf"))
    assert time.perf_counter() - started < 2
    assert not info.value.permanent


async def test_a_stalled_answer_hits_the_read_timeout(fetcher: Make, site: Site) -> None:
    site.answers["/stall.pdf"] = Answer(200, {"Content-Type": "application/pdf"},
                                        chunks=[BODY[:20], b""], pause=3)  # fmt: skip
    f = await fetcher(policy=LOCAL, read_timeout_seconds=0.3)
    with pytest.raises(FetchFailed, match="stalled") as info:
        await f.get(site.url("/stall.pdf"))
    assert info.value.status == 200


# ── status codes, content types and connections ──────────────────────────────


@pytest.mark.parametrize(
    ("status", "error", "reason"),
    [
        (404, FetchRefused, "404 Not Found: it is not there"),
        (410, FetchRefused, "410 Gone"),
        (403, FetchRefused, "403 Forbidden"),
        (429, FetchFailed, "429 Too Many Requests; it may pass"),
        (500, FetchFailed, "500 Internal Server Error"),
        (503, FetchFailed, "503 Service Unavailable"),
    ],
)
async def test_gone_is_permanent_and_a_server_in_trouble_may_pass(
    fetcher: Make, site: Site, status: int, error: type[FetchFailed | FetchRefused], reason: str
) -> None:
    site.page("/doc.pdf", b"nope", "text/plain; charset=utf-8", status=status)
    with pytest.raises(error, match=reason) as info:
        await (await fetcher(policy=LOCAL)).get(site.url("/doc.pdf"))
    assert (info.value.status, info.value.content_type) == (status, "text/plain; charset=utf-8")
    assert info.value.media_type == "text/plain"
    assert info.value.permanent == (status in (403, 404, 410))


async def test_a_redirect_without_a_location_is_refused(fetcher: Make, site: Site) -> None:
    site.answers["/moved"] = Answer(301, {})
    with pytest.raises(FetchRefused, match="without a usable Location") as info:
        await (await fetcher(policy=LOCAL)).get(site.url("/moved"))
    assert (info.value.reason, info.value.status) == ("status", 301)


async def test_content_types_not_read_are_refused_before_the_body(
    fetcher: Make, site: Site
) -> None:
    url = site.page("/photo", b"\x89PNG\r\n", "image/png")
    f = await fetcher(policy=LOCAL)
    for accept in ({"text/html"}, lambda mime: mime.startswith("text/")):
        with pytest.raises(FetchRefused, match=r"is image/png, which is not read") as info:
            await f.get(url, accept=accept)
        error = info.value
        assert (error.reason, error.status, error.content_type) == (
            "content_type",
            200,
            "image/png",
        )
    site.answers["/bare"] = Answer(200, {}, b"<p>no type</p>")
    with pytest.raises(FetchRefused, match="sent without a content type"):
        await f.get(site.url("/bare"), accept={"text/html"})
    fetched = await f.get(site.url("/bare"), accept={"text/html", ""})
    assert (fetched.content_type, fetched.media_type, fetched.charset) == ("", "", None)


async def test_the_content_type_and_charset_are_read_from_the_header(
    fetcher: Make, site: Site
) -> None:
    url = site.page("/page", "<p>Grüße</p>".encode("latin-1"), 'text/HTML; Charset="ISO-8859-1"')
    fetched = await (await fetcher(policy=LOCAL)).get(url, params={"q": "a b"})
    assert fetched.content_type == 'text/HTML; Charset="ISO-8859-1"'
    assert (fetched.media_type, fetched.charset) == ("text/html", "ISO-8859-1")
    assert site.asked[0]["query"] == {"q": ["a b"]}


async def test_a_refused_connection_may_pass(fetcher: Make) -> None:
    url = f"http://127.0.0.1:{closed_port()}/doc.pdf"
    with pytest.raises(FetchFailed, match="cannot connect"):
        await (await fetcher(policy=LOCAL)).get(url)


async def test_every_request_names_its_user_agent_and_what_it_accepts(
    fetcher: Make, site: Site
) -> None:
    url = site.page("/doc.pdf", BODY, "application/pdf")
    await (await fetcher(policy=LOCAL, user_agent="my-archive/2.0", accept="text/html")).get(url)
    await (await fetcher(policy=LOCAL)).get(url)
    assert [a["user_agent"] for a in site.asked] == ["my-archive/2.0", "loom/1.0"]
    assert site.asked[0]["accept"] == "text/html"


async def test_an_unguarded_fetcher_keeps_the_limits_but_not_the_address_checks(
    fetcher: Make, site: Site
) -> None:
    url = site.page("/api", b"{}" * 1000, "application/json")
    f = await fetcher(policy=None, max_bytes=1024)
    with pytest.raises(FetchRefused, match="larger than 1024 bytes"):
        await f.get(url)
    site.page("/api", b"{}", "application/json")
    assert (await f.get(url)).body == b"{}"


def test_errors_are_loom_errors_that_say_if_asking_again_helps() -> None:
    refused = FetchRefused("gone", reason="status", url="https://example.org/", status=410)
    failed = FetchFailed("busy", url="https://example.org/", status=503)
    assert isinstance(refused, LoomError)
    assert isinstance(failed, LoomError)
    assert (refused.permanent, failed.permanent) == (True, False)
    assert (refused.status, failed.content_type) == (410, "")


@pytest.mark.parametrize(
    "options", [{"max_bytes": 0}, {"total_timeout_seconds": 0}, {"max_redirects": -1}]
)
def test_options_out_of_range_are_refused(options: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(options))):
        FetchOptions(**options)  # type: ignore[arg-type]
