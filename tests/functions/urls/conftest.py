"""Real HTTP servers for the ``urls`` function (those of ``tests.loom.web``): a site on
127.0.0.1 whose answers each test sets (pages, PDFs, redirects, the HN API, an oEmbed
endpoint), PDFs written byte by byte, and extracting workers shared by the tests (their
start-up is paid once)."""

from __future__ import annotations

import contextlib
import ssl
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from functions.urls.handler import handle, open_urls
from functions.urls.settings import UrlsSettings
from loom.runtime.event import Event
from loom.store import LocalBlobStore
from loom.testing import FunctionHarness
from loom.web import Extractor, Resolver, system_resolve
from tests.loom.web.conftest import (
    Answer,
    Site,
    closed_port,
    hosts,
    serve,
)

__all__ = ["Answer", "Make", "Site", "closed_port", "hosts", "make_pdf", "slow_pdf", "task"]


@pytest.fixture
def site() -> Iterator[Site]:
    yield from serve(Site("127.0.0.1"))


# ── PDFs ──────────────────────────────────────────────────────────────────────


def _literal(text: str) -> bytes:
    escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    return f"({escaped})".encode("latin-1")


def make_pdf(pages: list[str], *, title: str | None = None, author: str | None = None) -> bytes:
    """A PDF with one line of Helvetica text per page (lines split on newlines)."""
    objects: list[bytes] = []
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(len(pages)))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode())
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    for i, text in enumerate(pages):
        lines = b" T* ".join(_literal(line) + b" Tj" for line in text.split("\n"))
        content = b"BT /F1 12 Tf 14 TL 72 720 Td " + lines + b" ET"
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {5 + 2 * i} 0 R "
            "/Resources << /Font << /F1 3 0 R >> >> >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream")
    info = []
    if title:
        info.append(b"/Title " + _literal(title))
    if author:
        info.append(b"/Author " + _literal(author))
    objects.append(b"<< " + b" ".join(info) + b" >>")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info %d 0 R >>\n" % (len(objects) + 1, len(objects))
    out += b"startxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def slow_pdf(pages: int = 6, operations: int = 100_000) -> bytes:
    """A PDF of a few kilobytes whose ``pages`` all show one compressed content stream of
    ``operations`` text operations: seconds of pypdf's time per page."""
    content = b"BT /F1 1 Tf " + b"(a) Tj 0 1 Td " * operations + b" ET"
    packed = zlib.compress(content, 9)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join([b"3 0 R"] * pages), pages),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n%s\nendstream" % (len(packed), packed),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


# ── the function ──────────────────────────────────────────────────────────────

Make = Callable[..., Awaitable[FunctionHarness]]


@pytest.fixture(scope="session")
def extractor() -> Iterator[Extractor]:
    """The extracting workers of the default settings, started on first need."""
    with contextlib.closing(UrlsSettings().extractor()) as workers:
        yield workers


@pytest.fixture
async def make(site: Site, tmp_path: Path, extractor: Extractor) -> AsyncIterator[Make]:
    """Builds the function with its lifespan open, the APIs on ``site``, PDFs kept in a
    blob store under ``tmp_path``; short timeouts. The shared extracting workers are
    used unless a ``urls_extract_*`` setting is given (then the function starts its own)."""
    async with AsyncExitStack() as stack:

        async def build(
            *, resolve: Resolver = system_resolve, verify: ssl.SSLContext | bool = True,
            **settings: Any,
        ) -> FunctionHarness:  # fmt: skip
            config = UrlsSettings(**{
                "urls_hackernews_api_url": site.url(""),
                "urls_twitter_oembed_url": site.url("/oembed"),
                "urls_connect_timeout_seconds": 2.0,
                "urls_read_timeout_seconds": 2.0,
                "urls_total_timeout_seconds": 5.0,
                **settings,
            })  # fmt: skip
            blobs = LocalBlobStore(tmp_path / "blobs")
            own = any(name.startswith("urls_extract_") for name in settings)
            shared = None if own else extractor
            opened = open_urls(config, blobs=blobs, resolve=resolve, verify=verify,
                               extractor=shared)  # fmt: skip
            state = await stack.enter_async_context(opened)
            return FunctionHarness(handle, state=state, settings=config)

        yield build


def task(url: str, **data: Any) -> Event:
    """A ``task.url.ingest`` event asking for ``url``."""
    payload = {"schema_version": "1.0", "timestamp": "2026-11-25T08:15:30Z", "url": url,
               "device_id": "phone-1", "account": "ada", **data}  # fmt: skip
    return Event(type="task.url.ingest", data=payload, source="/devices/phone-1",
                 device_id="phone-1")  # fmt: skip
