"""PDFs at a URL become ``task.url.processed.pdf_extracted``: text page by page, page count,
title and author, a copy in the blob store. Web pages and plain text become
``task.url.processed.web_archived``: the readable text and what the page says of itself.
Other content is a dead letter that says why."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pypdf import PdfReader, PdfWriter

from functions.urls.handler import handle
from functions.urls.settings import UrlsSettings
from loom.catalog import default_catalog
from loom.runtime.invoke import PoisonEvent
from loom.store import BlobRef, LocalBlobStore
from loom.testing import FunctionHarness, assert_emitted
from tests.functions.urls.conftest import Make, Site, make_pdf, slow_pdf, task

PDF = "task.url.processed.pdf_extracted"
WEB = "task.url.processed.web_archived"
ARTICLE = """<!doctype html><html><head><meta charset="utf-8">
<title>Loom: a tiny event pipeline | Example Blog</title>
<meta property="og:site_name" content="Example Blog">
<meta name="author" content="Ada Lovelace">
<meta property="article:published_time" content="2026-11-20T09:00:00Z"></head>
<body><nav><a href="/">Home</a> | <a href="/about">About</a> | Subscribe now</nav>
<article><h1>Loom: a tiny event pipeline</h1>
<p>Loom collects events from your devices and keeps them in one place, so that you can
query and replay your own life's data whenever you like, on your own machine.</p>
<p>Every event goes through Kafka first, then through small functions, and ends up in
PostgreSQL with a retention period that fits what it is. Straße and café keep their
letters.</p></article>
<footer>Copyright 2026 Example Blog. Cookie settings.</footer></body></html>"""
PAPER = make_pdf(["Small Models, Big Logs\nAbstract. We study personal event logs.",
                  "1. Introduction\nPeople keep logs.", "References"],
                 title="Small Models, Big Logs", author="A. Lovelace; G. Hopper")  # fmt: skip


async def test_a_pdf_becomes_its_text_per_page_with_metadata_and_a_kept_copy(
    make: Make, site: Site, tmp_path: Path
) -> None:
    url = site.page("/paper.pdf", PAPER, "application/pdf")
    h = await make(urls_allow_private=True)
    event = task(url, kind="pdf", requested_by="android-share-sheet")
    (made,) = assert_emitted(await h.call(event), PDF, count=1)
    data = made.data
    assert data["page_count"] == 3
    assert data["text"].split("\f") == [
        "Small Models, Big Logs\nAbstract. We study personal event logs.",
        "1. Introduction\nPeople keep logs.",
        "References",
    ]
    assert (data["title"], data["author"]) == ("Small Models, Big Logs", "A. Lovelace; G. Hopper")
    assert (data["url"], data["timestamp"]) == (url, "2026-11-25T08:15:30Z")
    assert (data["device_id"], data["account"]) == ("phone-1", "ada")
    assert data["derived_from"] == {"type": "task.url.ingest", "source": "/devices/phone-1",
                                    "id": event.id}  # fmt: skip
    document = data["document"]
    assert document["sha256"] == hashlib.sha256(PAPER).hexdigest()
    assert document["content_type"] == "application/pdf"
    kept = LocalBlobStore(tmp_path / "blobs").get(BlobRef(**document))
    assert kept == PAPER


async def test_the_same_task_twice_makes_the_same_event_id(make: Make, site: Site) -> None:
    url = site.page("/paper.pdf", PAPER, "application/pdf")
    h = await make(urls_allow_private=True)
    event = task(url)
    (first,) = await h.call(event)
    (again,) = await h.call(event)
    assert first.id == again.id
    assert first.data["document"] == again.data["document"]


async def test_a_pdf_without_metadata_takes_its_first_line_as_title(make: Make, site: Site) -> None:
    url = site.page("/menu", make_pdf(["Lunch menu\nSoup"]), "application/pdf")
    h = await make(urls_allow_private=True, urls_keep_pdf=False)
    (made,) = await h.call(task(url))
    assert made.data["title"] == "Lunch menu"
    assert "author" not in made.data
    assert "document" not in made.data  # LOOM_URLS_KEEP_PDF=false


@pytest.mark.parametrize("content_type", ["application/octet-stream", None])
async def test_a_pdf_sent_without_its_content_type_is_recognised(
    make: Make, site: Site, content_type: str | None
) -> None:
    site.page("/download", PAPER, content_type or "")
    if content_type is None:
        del site.answers["/download"].headers["Content-Type"]
    (made,) = await (await make(urls_allow_private=True)).call(task(site.url("/download")))
    assert made.data["page_count"] == 3


async def test_a_web_page_becomes_its_readable_text_with_what_it_says_of_itself(
    make: Make, site: Site
) -> None:
    page = site.page("/blog/loom", ARTICLE, "text/html; charset=utf-8")
    asked = site.redirect("/share", "/blog/loom") + "?utm_source=share"
    h = await make(urls_allow_private=True)
    event = task(asked, kind="web")
    (made,) = assert_emitted(await h.call(event), WEB, count=1)
    data = made.data
    assert (data["url"], data["final_url"]) == (asked, page)
    assert data["title"].startswith("Loom: a tiny event pipeline")
    assert (data["author"], data["published"], data["site_name"]) == (
        "Ada Lovelace", "2026-11-20", "Example Blog")  # fmt: skip
    text = data["text"]
    assert "Loom collects events from your devices" in text
    assert "ends up in PostgreSQL" in " ".join(text.split())
    assert "Straße and café" in text
    assert "Subscribe now" not in text  # navigation and boilerplate are left out
    assert "Cookie settings" not in text
    assert data["text_chars"] == len(text)
    assert (data["content_type"], data["http_status"]) == ("text/html; charset=utf-8", 200)
    assert data["archived_at"].endswith("Z")
    assert (data["timestamp"], data["device_id"], data["account"]) == (
        "2026-11-25T08:15:30Z", "phone-1", "ada")  # fmt: skip
    assert data["derived_from"] == {"type": "task.url.ingest", "source": "/devices/phone-1",
                                    "id": event.id}  # fmt: skip
    assert "document" not in data  # pages are not copied to the blob store


async def test_plain_text_is_archived_as_it_is(make: Make, site: Site) -> None:
    url = site.page("/notes.txt", "Grüße\nfrom a text file\n".encode("latin-1"),
                    "text/plain; charset=ISO-8859-1")  # fmt: skip
    (made,) = assert_emitted(await (await make(urls_allow_private=True)).call(task(url)), WEB)
    assert made.data["text"] == "Grüße\nfrom a text file"
    assert made.data["content_type"] == "text/plain; charset=ISO-8859-1"
    assert "title" not in made.data


async def test_kind_web_on_a_pdf_still_extracts_the_pdf(make: Make, site: Site) -> None:
    url = site.page("/paper.pdf", PAPER, "application/pdf")
    made = await (await make(urls_allow_private=True)).call(task(url, kind="web"))
    assert assert_emitted(made, PDF, count=1)[0].data["page_count"] == 3


async def test_a_web_page_asked_for_as_a_pdf_is_a_dead_letter(make: Make, site: Site) -> None:
    url = site.page("/post", "<html><body><p>Hello</p></body></html>", "text/html; charset=utf-8")
    h = await make(urls_allow_private=True)
    with pytest.raises(PoisonEvent, match=r"is text/html, not a PDF: there is nothing to extract"):
        await h.call(task(url, kind="pdf"))


async def test_a_long_page_is_cut_to_what_the_type_may_hold(make: Make, site: Site) -> None:
    line = "All work and no play makes a long page. "
    url = site.page("/long.txt", line * 120_000, "text/plain")  # ~4.8 MB
    (made,) = await (await make(urls_allow_private=True)).call(task(url))
    limit = default_catalog()[WEB].max_bytes
    size = len(json.dumps(made.data, ensure_ascii=False).encode())
    assert limit - 4096 < size <= limit
    assert made.data["text_chars"] == len((line * 120_000).strip())
    assert len(made.data["text"]) < made.data["text_chars"]
    assert made.data["text"].startswith(line)


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (b"\x89PNG\r\n", "image/png", r"is image/png, not a web page or a PDF"),
        (b"just text", "application/pdf", r"not a PDF \(application/pdf, no %PDF- header\)"),
        (b"just text", "application/octet-stream", r"not a PDF \(application/octet-stream"),
        (b"%PDF-1.4\n garbage", "application/pdf", "the PDF cannot be read"),
    ],
    ids=["image", "pdf-in-name-only", "unknown-binary", "broken-pdf"],
)
async def test_content_that_is_not_a_readable_pdf_is_a_dead_letter(
    make: Make, site: Site, body: bytes, content_type: str, reason: str
) -> None:
    url = site.page("/thing", body, content_type)
    with pytest.raises(PoisonEvent, match=reason):
        await (await make(urls_allow_private=True)).call(task(url))


async def test_a_locked_pdf_is_a_dead_letter(make: Make, site: Site) -> None:
    writer = PdfWriter()
    writer.append(PdfReader(io.BytesIO(PAPER)))
    writer.encrypt(user_password="secret", algorithm="RC4-128")
    locked = io.BytesIO()
    writer.write(locked)
    url = site.page("/locked.pdf", locked.getvalue(), "application/pdf")
    with pytest.raises(PoisonEvent, match="locked with a password"):
        await (await make(urls_allow_private=True)).call(task(url))


async def test_a_long_pdf_text_is_kept_whole_within_what_the_type_may_hold(
    make: Make, site: Site
) -> None:
    line = "All work and no play makes a long report. " * 2
    pages = ["\n".join([line] * 60) for _ in range(80)]  # ~400 KB of text
    url = site.page("/long.pdf", make_pdf(pages), "application/pdf")
    (made,) = await (await make(urls_allow_private=True)).call(task(url))
    limit = default_catalog()[PDF].max_bytes
    assert limit == 8 * 1024 * 1024  # long texts fit: more than the 256 KiB default
    assert len(json.dumps(made.data, ensure_ascii=False).encode()) > 400_000
    assert made.data["page_count"] == 80
    assert made.data["text"].split("\f") == [page.strip() for page in pages]


async def test_only_the_first_pages_of_a_long_pdf_are_read(make: Make, site: Site) -> None:
    url = site.page("/book.pdf", make_pdf([f"Chapter {n}" for n in range(1, 6)]), "application/pdf")
    (made,) = await (await make(urls_allow_private=True, urls_max_pdf_pages=2)).call(task(url))
    assert made.data["page_count"] == 5  # the PDF's own
    assert made.data["text"].split("\f") == ["Chapter 1", "Chapter 2"]


async def test_a_pdf_that_takes_too_long_to_read_is_stopped_and_a_dead_letter(
    make: Make, site: Site
) -> None:
    slow = site.page("/slow.pdf", slow_pdf(), "application/pdf")  # 3 KB, half a minute of pypdf
    fine = site.page("/paper.pdf", PAPER, "application/pdf")
    h = await make(urls_allow_private=True, urls_extract_timeout_seconds=1,
                   urls_extract_workers=1)  # fmt: skip
    await h.call(task(fine))  # the worker is warm
    started = time.monotonic()
    with pytest.raises(
        PoisonEvent,
        match=r"slow\.pdf: extracting its text took longer than 1 s "
        r"\(LOOM_URLS_EXTRACT_TIMEOUT_SECONDS\) and was stopped; it would take as long again",
    ):
        await h.call(task(slow))
    assert time.monotonic() - started < 5
    (made,) = await h.call(task(fine))  # another worker took the stopped one's place
    assert made.data["page_count"] == 3


async def test_a_page_that_takes_too_long_to_read_is_stopped_and_a_dead_letter(
    make: Make, site: Site
) -> None:
    body = "<html><body>" + "<p>lorem ipsum dolor sit amet consectetur</p>" * 20_000
    url = site.page("/long.html", body + "</body></html>", "text/html")  # seconds of trafilatura
    h = await make(urls_allow_private=True, urls_extract_timeout_seconds=0.3,
                   urls_extract_workers=1)  # fmt: skip
    with pytest.raises(
        PoisonEvent, match=r"long\.html: extracting its text took longer than 0\.3 s"
    ):
        await h.call(task(url))


async def test_slow_documents_hold_no_thread_of_the_event_loop(make: Make, site: Site) -> None:
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=1))
    url = site.page("/slow.pdf", slow_pdf(), "application/pdf")
    h = await make(urls_allow_private=True, urls_extract_timeout_seconds=0.5,
                   urls_extract_workers=2)  # fmt: skip
    calls = [asyncio.ensure_future(h.call(task(f"{url}?n={n}"))) for n in range(3)]
    await asyncio.sleep(0.2)
    await asyncio.wait_for(asyncio.to_thread(time.sleep, 0), 1)  # the loop's one thread is free
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(o, PoisonEvent) and "took longer" in str(o) for o in outcomes)


async def test_the_lifespan_opens_the_clients_and_the_blob_store_from_the_settings(
    site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOOM_STORE_BLOB_URL", f"file://{tmp_path}/kept")
    url = site.page("/paper.pdf", PAPER, "application/pdf")
    async with FunctionHarness(handle, settings=UrlsSettings(urls_allow_private=True)) as h:
        (made,) = await h.call(task(url))
    digest = made.data["document"]["sha256"]
    assert (tmp_path / "kept" / "sha256" / digest[:2] / digest[2:4] / digest).read_bytes() == PAPER
