"""Readable text out of fetched bodies: web pages (trafilatura), PDFs (pypdf), plain text.

CPU-bound and synchronous, and slow beyond measure on documents made for it: the
handler runs :func:`html_page` and :func:`pdf_document` in a worker process with a
time limit (:class:`loom.web.Extractor`). Each stops at ``max_chars`` characters of
text, and a PDF at ``max_pages`` pages.
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
    """A web page's main text, without navigation and boilerplate, and its metadata;
    ``text_chars`` is the length of the text before it was cut."""

    text: str
    text_chars: int
    title: str | None = None
    author: str | None = None
    date: str | None = None  # as the page states it, e.g. 2024-03-01
    site_name: str | None = None  # the site's own name (og:site_name and the like)


@dataclass(frozen=True)
class Document:
    """A PDF's text page by page (the first pages only, when it has more than were read),
    its number of pages, and what its metadata says."""

    pages: tuple[str, ...]
    page_count: int
    title: str | None = None
    author: str | None = None

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


def html_page(body: bytes, url: str, charset: str | None = None, *, max_chars: int) -> Page:
    """The main text of an HTML page (trafilatura), its first ``max_chars`` characters,
    with title, author, date and the site's name."""
    import trafilatura

    markup: str | bytes = _decoded(body, charset) or body
    found = trafilatura.bare_extraction(markup, url=url, with_metadata=True,
                                        include_comments=False, include_tables=True)  # fmt: skip
    text = getattr(found, "text", None) or ""
    if not text.strip():  # no main content found: all the page's text instead
        text = trafilatura.html2txt(markup)
    text = text.strip()
    return Page(
        text=text[:max_chars],
        text_chars=len(text),
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


def pdf_document(body: bytes, *, max_pages: int, max_chars: int) -> Document:
    """The text of a PDF page by page, its page count, title and author. Only the first
    ``max_pages`` pages are read, and no page after the text reaches ``max_chars``
    characters (its pages, cut there)."""
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
    texts: list[str] = []
    room = max_chars
    for number in range(min(count, max_pages)):
        if room <= 0:
            break
        try:
            text = pages[number].extract_text().strip()[:room]
        except Exception:  # noqa: BLE001 - one broken page leaves the others readable
            text = ""
        texts.append(text)
        room -= len(text) + len(PAGE_SEPARATOR)
    info = _metadata(reader)
    title = _clean(info.get("/Title"), 1024) or _first_line(texts)
    return Document(pages=tuple(texts), page_count=count, title=title,
                    author=_clean(info.get("/Author"), 1024))  # fmt: skip


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
