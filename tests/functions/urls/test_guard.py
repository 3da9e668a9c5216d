"""What the urls function makes of the guarded fetcher's refusals and failures: a URL that
can never be fetched (a refused address, a bad URL, 404/410, too large) is a dead letter
with the reason, one that may pass (5xx, 429, a refused connection) is retried; and its
LOOM_URLS_* settings set the fetcher's address rules and limits. The fetcher's own rules
are tested in tests/loom/web."""

from __future__ import annotations

import pytest
import yaml

from functions.urls.handler import TryLater, UrlRefused, handle
from loom.catalog import default_catalog
from loom.manifests import ManifestOptions, generate, render
from loom.runtime.invoke import HandlerFailed, PoisonEvent
from loom.runtime.registry import Registry
from loom.testing import assert_emitted
from tests.functions.urls.conftest import Answer, Make, Site, closed_port, make_pdf, task

PDF = "task.url.processed.pdf_extracted"
PDF_BYTES = make_pdf(["Quarterly numbers"], title="Numbers")


def serve_pdf(site: Site, path: str = "/doc.pdf") -> str:
    return site.page(path, PDF_BYTES, "application/pdf")


# ── addresses ────────────────────────────────────────────────────────────────


async def test_loopback_is_refused_unless_allowed(make: Make, site: Site) -> None:
    url = serve_pdf(site)
    with pytest.raises(PoisonEvent, match=r"127\.0\.0\.1 is a loopback address.*public") as info:
        await (await make()).call(task(url))
    assert "(LOOM_URLS_ALLOW_PRIVATE, LOOM_URLS_ALLOWED_NETWORKS)" in str(info.value)
    assert site.asked == []  # not even connected to
    made = await (await make(urls_allow_private=True)).call(task(url))
    assert assert_emitted(made, PDF, count=1)[0].data["text"] == "Quarterly numbers"


async def test_an_allowed_network_opens_just_that_network(make: Make, site: Site) -> None:
    url = serve_pdf(site)
    assert await (await make(urls_allowed_networks="127.0.0.1/32")).call(task(url))
    with pytest.raises(PoisonEvent, match="loopback"):
        await (await make(urls_allowed_networks="10.0.0.0/8")).call(task(url))


async def test_a_redirect_to_cloud_metadata_is_a_dead_letter(make: Make, site: Site) -> None:
    url = site.redirect("/go", "http://169.254.169.254/latest/meta-data/", status=301)
    with pytest.raises(PoisonEvent, match="link-local"):
        await (await make(urls_allow_private=True)).call(task(url))


# ── URLs ─────────────────────────────────────────────────────────────────────


async def test_a_url_that_is_not_fetched_is_a_dead_letter(make: Make) -> None:
    """Which URLs are not fetched is the fetcher's rule (tests/loom/web/test_fetch.py)."""
    with pytest.raises(PoisonEvent, match="only http and https"):
        await (await make(urls_allow_private=True)).call(task("file:///etc/passwd"))


# ── limits ───────────────────────────────────────────────────────────────────


async def test_redirects_are_followed_up_to_the_limit(make: Make, site: Site) -> None:
    serve_pdf(site)
    for n in range(3):
        site.redirect(f"/hop{n}", f"/hop{n + 1}" if n < 2 else "/doc.pdf")
    h = await make(urls_allow_private=True, urls_max_redirects=3)
    (made,) = await h.call(task(site.url("/hop0")))
    assert made.data["url"] == site.url("/doc.pdf")
    h = await make(urls_allow_private=True, urls_max_redirects=2)
    with pytest.raises(PoisonEvent, match=r"more than 2 redirects \(LOOM_URLS_MAX_REDIRECTS\)"):
        await h.call(task(site.url("/hop0")))


async def test_a_declared_length_over_the_limit_is_refused_up_front(make: Make, site: Site) -> None:
    site.answers["/big.pdf"] = Answer(
        200, {"Content-Type": "application/pdf", "Content-Length": "50000000"}, PDF_BYTES
    )
    h = await make(urls_allow_private=True, urls_max_bytes=1_000_000)
    with pytest.raises(PoisonEvent, match=r"larger than 1000000 bytes \(LOOM_URLS_MAX_BYTES\)"):
        await h.call(task(site.url("/big.pdf")))


async def test_a_slow_body_is_given_up_at_the_total_time_and_retried(
    make: Make, site: Site
) -> None:
    trickle = [PDF_BYTES[:20]] + [b" "] * 100
    site.answers["/slow.pdf"] = Answer(200, {"Content-Type": "application/pdf"},
                                       chunks=trickle, pause=0.1)  # fmt: skip
    h = await make(urls_allow_private=True, urls_total_timeout_seconds=0.5)
    with pytest.raises(TryLater, match=r"took longer than 0\.5 s"):
        await h.call(task(site.url("/slow.pdf")))


# ── status codes and connections ─────────────────────────────────────────────


async def test_gone_is_a_dead_letter_and_a_server_in_trouble_is_retried(
    make: Make, site: Site
) -> None:
    """Which statuses may pass is the fetcher's rule (tests/loom/web/test_fetch.py)."""
    h = await make(urls_allow_private=True)
    site.page("/gone.pdf", b"nope", "text/plain", status=404)
    with pytest.raises(UrlRefused, match="404 Not Found: it is not there") as gone:
        await h.call(task(site.url("/gone.pdf")))
    assert isinstance(gone.value, PoisonEvent)
    site.page("/busy.pdf", b"nope", "text/plain", status=503)
    with pytest.raises(TryLater, match="503 Service Unavailable") as busy:
        await h.call(task(site.url("/busy.pdf")))
    assert isinstance(busy.value, HandlerFailed)
    assert not isinstance(busy.value, PoisonEvent)


async def test_a_refused_connection_is_retried(make: Make) -> None:
    url = f"http://127.0.0.1:{closed_port()}/doc.pdf"
    with pytest.raises(HandlerFailed, match="cannot connect"):
        await (await make(urls_allow_private=True)).call(task(url))


def test_a_site_that_is_down_for_a_minute_is_waited_out() -> None:
    """Knative redelivers a failed task 6 times, 1 s apart and doubling: about a minute."""
    registry = Registry()
    registry.add(handle.spec)
    files = generate(default_catalog(), registry, ManifestOptions())
    (trigger,) = [t for t in yaml.safe_load_all(render(files["eventing/triggers.yaml"])) if t]
    assert trigger["spec"]["subscriber"]["ref"]["name"] == "urls"
    delivery = trigger["spec"]["delivery"]
    assert (delivery["retry"], delivery["backoffDelay"]) == (6, "PT1S")


async def test_every_request_names_loom_as_its_user_agent(make: Make, site: Site) -> None:
    serve_pdf(site)
    h = await make(urls_allow_private=True, urls_user_agent="my-archive/2.0")
    await h.call(task(site.url("/doc.pdf")))
    assert [a["user_agent"] for a in site.asked] == ["my-archive/2.0"]
