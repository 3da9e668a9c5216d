"""Readable text of a fetched body (web page, PDF, plain text) and of a post's own text.

CPU-bound and synchronous, and slow beyond measure on documents made for it: the
handler runs :func:`readable` on web pages and PDFs (:data:`SLOW`) in a worker process
with a time limit (:class:`loom.web.Extractor`). It gives no more than ``max_chars``
characters of text, and reads no more than ``max_pages`` pages of a PDF.
"""

from __future__ import annotations

import codecs
import io
import logging
import re

import lxml.etree  # type: ignore[import-untyped]
import lxml.html  # type: ignore[import-untyped]

from loom.web import Fetched

__all__ = ["HTML", "PDF", "READABLE", "SLOW", "TEXT", "post_text", "readable"]

HTML = frozenset({"text/html", "application/xhtml+xml"})
PDF = frozenset({"application/pdf", "application/x-pdf"})
TEXT = frozenset({"text/plain", "text/markdown"})
READABLE = HTML | PDF | TEXT  # what is fetched; any other type gives an empty text
SLOW = HTML | PDF  # what is read in a worker process, with a time limit

_PARAGRAPH = re.compile(r"<p\s*/?>", re.IGNORECASE)


def readable(fetched: Fetched, *, max_chars: int, max_pages: int) -> tuple[str | None, str]:
    """The title (if the body names one) and the readable text of ``fetched``, its first
    ``max_chars`` characters (of a PDF's first ``max_pages`` pages)."""
    if not fetched.body:
        return None, ""
    media = fetched.media_type
    if media in HTML:
        title, text = _html(fetched)
    elif media in PDF:
        title, text = _pdf(fetched.body, max_chars, max_pages)
    elif media in TEXT:
        title, text = None, fetched.body.decode(_codec(fetched.charset), errors="replace")
    else:
        title, text = None, ""
    return title, text.strip()[:max_chars]


def _codec(charset: str | None) -> str:
    try:
        return codecs.lookup(charset or "utf-8").name
    except LookupError:  # a charset nobody knows: UTF-8 is the best guess
        return "utf-8"


def _html(fetched: Fetched) -> tuple[str | None, str]:
    import trafilatura

    document = trafilatura.bare_extraction(
        fetched.body, url=fetched.url, with_metadata=True, include_comments=False
    )
    title = getattr(document, "title", None) or None
    text = getattr(document, "text", None) or ""
    if not text:  # no main content found: all the page's text rather than none
        text = trafilatura.html2txt(fetched.body) or ""
    if title is None:
        try:
            found = lxml.html.fromstring(fetched.body).findtext(".//title")
        except (lxml.etree.ParserError, ValueError):  # no document at all
            found = None
        title = " ".join(found.split()) if found else None
    return title, text.strip()


def _pdf(body: bytes, max_chars: int, max_pages: int) -> tuple[str | None, str]:
    from pypdf import PdfReader

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # it warns on every odd object
    pages: list[str] = []
    room = max_chars
    try:
        reader = PdfReader(io.BytesIO(body))
        for page in reader.pages[:max_pages]:
            if room <= 0:
                break
            text = (page.extract_text() or "").strip()
            pages.append(text)
            room -= len(text) + 2
        title = reader.metadata.title if reader.metadata else None
    except Exception:  # noqa: BLE001 — a broken or locked PDF has no text to give
        return None, ""
    return (str(title).strip() or None) if title else None, "\n\n".join(p for p in pages if p)


def post_text(html: str) -> str:
    """A post's text as the API gives it (HTML: ``<p>`` between paragraphs, entities)."""
    if not html.strip():
        return ""
    fragment = lxml.html.fromstring(f"<div>{_PARAGRAPH.sub(chr(10) * 2, html)}</div>")
    return str(fragment.text_content()).strip()
