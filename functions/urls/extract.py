"""Readable text out of fetched bodies: web pages (trafilatura), PDFs (pypdf), plain text.

CPU-bound and synchronous: the handler runs these off the event loop.
"""

from __future__ import annotations

import codecs
import io
from dataclasses import dataclass
from typing import Any

from loom.runtime.invoke import PoisonEvent

__all__ = [
    "HTML_TYPES",
    "PDF_TYPES",
    "TEXT_TYPES",
    "ContentUnreadable",
    "Document",
    "Page",
    "html_page",
    "looks_like_pdf",
    "pdf_document",
    "plain_text",
]

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
PDF_TYPES = frozenset({"application/pdf", "application/x-pdf"})
TEXT_TYPES = frozenset({"text/plain", "text/markdown"})
PAGE_SEPARATOR = "\f"  # between the pages of a PDF's text, as pdftotext writes it


class ContentUnreadable(PoisonEvent):
    """The body is not what it claims to be (a broken or locked PDF, say)."""


@dataclass(frozen=True)
class Page:
    """A web page's main text, without navigation and boilerplate, and its metadata."""

    text: str
    title: str | None = None
    author: str | None = None
    date: str | None = None  # as the page states it, e.g. 2024-03-01
    site_name: str | None = None  # the site's own name (og:site_name and the like)


@dataclass(frozen=True)
class Document:
    """A PDF's text page by page, and what its metadata says."""

    pages: tuple[str, ...]
    title: str | None = None
    author: str | None = None

    @property
    def page_count(self) -> int:
        return len(self.pages)

    @property
    def text(self) -> str:
        return PAGE_SEPARATOR.join(self.pages)


def _clean(value: Any, limit: int) -> str | None:
    text = " ".join(str(value).split()) if value is not None else ""
    return text[:limit] or None


def _decoded(body: bytes, charset: str | None) -> str | None:
    if not charset:
        return None
    try:
        return body.decode(codecs.lookup(charset).name, errors="replace")
    except LookupError:
        return None  # an unknown charset: let the parser guess


def html_page(body: bytes, url: str, charset: str | None = None) -> Page:
    """The main text of an HTML page (trafilatura), with title, author, date and the
    site's name."""
    import trafilatura

    markup: str | bytes = _decoded(body, charset) or body
    found = trafilatura.bare_extraction(markup, url=url, with_metadata=True,
                                        include_comments=False, include_tables=True)  # fmt: skip
    text = getattr(found, "text", None) or ""
    if not text.strip():  # no main content found: all the page's text instead
        text = trafilatura.html2txt(markup)
    return Page(
        text=text.strip(),
        title=_clean(getattr(found, "title", None), 1024),
        author=_clean(getattr(found, "author", None), 1024),
        date=_clean(getattr(found, "date", None), 64),
        site_name=_clean(getattr(found, "sitename", None), 256),
    )


def plain_text(body: bytes, charset: str | None = None) -> str:
    return (_decoded(body, charset) or body.decode("utf-8", errors="replace")).strip()


def looks_like_pdf(body: bytes) -> bool:
    """PDF readers look for the header in the first 1024 bytes; so does this."""
    return b"%PDF-" in body[:1024]


def pdf_document(body: bytes) -> Document:
    """The text of every page of a PDF, its page count, title and author."""
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, PyPdfError

    try:
        reader = PdfReader(io.BytesIO(body))
        if reader.is_encrypted and not reader.decrypt(""):
            raise ContentUnreadable("the PDF is locked with a password")
        pages = reader.pages
        count = len(pages)
    except ContentUnreadable:
        raise
    except (
        PyPdfError,
        DependencyError,
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
        OSError,
    ) as exc:
        raise ContentUnreadable(f"the PDF cannot be read: {type(exc).__name__}: {exc}") from None
    if count == 0:
        raise ContentUnreadable("the PDF has no pages")
    texts = []
    for page in pages:
        try:
            texts.append(page.extract_text().strip())
        except Exception:  # noqa: BLE001 - one broken page leaves the others readable
            texts.append("")
    info = _metadata(reader)
    title = _clean(info.get("/Title"), 1024) or _first_line(texts)
    return Document(pages=tuple(texts), title=title, author=_clean(info.get("/Author"), 1024))


def _metadata(reader: Any) -> dict[str, Any]:
    try:
        return dict(reader.metadata or {})
    except Exception:  # noqa: BLE001 - a broken info dictionary means no metadata
        return {}


def _first_line(texts: list[str]) -> str | None:
    """The first line of text, as a title when the metadata names none."""
    for text in texts:
        for line in text.splitlines():
            if line.strip():
                line = " ".join(line.split())
                return line if len(line) <= 200 else None
    return None
