"""Readable text from the HTML of an email, with the standard library's HTML parser.

Paragraphs, line breaks, list items and table rows become lines; scripts, styles and
the head are dropped; a link keeps its text and, where that differs, its address.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

__all__ = ["html_to_text"]

_HIDDEN = {"head", "script", "style", "template", "noscript", "title"}
_BLOCK = {
    "address", "article", "aside", "blockquote", "center", "dd", "div", "dl", "dt",
    "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5",
    "h6", "header", "hr", "li", "main", "nav", "ol", "p", "pre", "section", "table",
    "tbody", "thead", "tfoot", "tr", "ul",
}  # fmt: skip
_PARAGRAPH = {"p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "table", "ul", "ol", "pre"}
_SPACES = re.compile(r"[ \t\f\v\r\n\u00a0]+")


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.hidden = 0
        self.pre = 0
        self.breaks = 0  # line breaks owed before the next text: 1 a new line, 2 a blank one
        self.links: list[tuple[str, int]] = []  # (href, where its text starts in out)

    def _break(self, lines: int) -> None:
        self.breaks = max(self.breaks, lines)

    def _write(self, text: str) -> None:
        if self.breaks and self.out:
            self.out.append("\n" * self.breaks)
        self.breaks = 0
        self.out.append(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN:
            self.hidden += 1
        elif tag == "br":
            if self.breaks:
                self.breaks += 1
            else:
                self._write("")
                self.breaks = 1
        elif tag in _BLOCK:
            self._break(2 if tag in _PARAGRAPH else 1)
            if tag == "li":
                self._write("- ")
            elif tag == "pre":
                self.pre += 1
        elif tag in ("td", "th"):
            self._write(" ")
        elif tag == "img":
            alt = dict(attrs).get("alt")
            if alt and not self.hidden:
                self._write(f" {alt} ")
        elif tag == "a":
            self.links.append((dict(attrs).get("href") or "", len(self.out)))

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag in _BLOCK:
            if tag == "pre":
                self.pre = max(0, self.pre - 1)
            self._break(2 if tag in _PARAGRAPH else 1)
        elif tag == "a" and self.links:
            href, start = self.links.pop()
            text = "".join(self.out[start:]).strip()
            if href.startswith(("http://", "https://")) and href not in text:
                self._write(f" <{href}>" if text else href)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in ("br", "img", "hr"):
            self.handle_endtag(tag)

    def handle_data(self, data: str) -> None:
        if self.hidden:
            return
        if self.pre:
            self._write(data)
        elif (text := _SPACES.sub(" ", data)) and (text != " " or not self.breaks):
            self._write(text)


def html_to_text(html: str) -> str:
    """The text a reader of ``html`` sees, as lines; at most one blank line in a row."""
    parser = _Text()
    parser.feed(html)
    parser.close()
    lines = [re.sub(" {2,}", " ", line).strip(" ") for line in "".join(parser.out).split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
