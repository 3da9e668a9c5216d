"""Reading Hacker News list pages (``/favorites``, ``/upvoted``) and the login answer.

The site has no API for these lists, so the HTML is read: each item is a
``<tr class="athing" id="…">`` row whose ``span.titleline`` holds the title link, and
a ``a.morelink`` at the end says another page follows. Pages that are not lists
("No such user.", "Can't display that." or a login form) are errors that say why.
"""

from __future__ import annotations

from dataclasses import dataclass

import lxml.html  # type: ignore[import-untyped]

from loom.errors import LoomError

__all__ = ["HackerNewsError", "ListPage", "ListedItem", "login_refusal", "parse_list"]

_ATHING = "//tr[contains(concat(' ', normalize-space(@class), ' '), ' athing ')][@id]"


class HackerNewsError(LoomError):
    """Hacker News answered, but not with what was asked (no such user, not logged in)."""


@dataclass(frozen=True)
class ListedItem:
    """One row of a list page: the item id, and its title and link as the page shows them."""

    id: int
    title: str
    href: str | None


@dataclass(frozen=True)
class ListPage:
    items: list[ListedItem]
    more: bool  # a next page follows


def parse_list(html: str, *, what: str) -> ListPage:
    """The items of one list page, newest first; ``what`` names the list in errors."""
    doc = lxml.html.fromstring(html or "<html></html>")
    items = []
    for row in doc.xpath(_ATHING):
        raw_id = str(row.get("id", "")).strip()
        if not raw_id.isdigit() or int(raw_id) < 1:
            continue
        links = row.xpath(".//span[contains(@class, 'titleline')]/a[1]") or row.xpath(
            ".//td[contains(@class, 'title')]/a[not(contains(@class, 'morelink'))][1]"
        )
        title = " ".join(links[0].text_content().split()) if links else ""
        href = str(links[0].get("href")) if links and links[0].get("href") else None
        items.append(ListedItem(int(raw_id), title, href))
    more = bool(doc.xpath("//a[contains(concat(' ', normalize-space(@class), ' '), ' morelink ')]"))
    if not items:
        _check_empty(doc, what)
    return ListPage(items, more)


def _check_empty(doc: lxml.html.HtmlElement, what: str) -> None:
    """An empty list is fine; a page that is no list at all is an error."""
    text = " ".join(doc.text_content().split())
    if "not able to serve your requests this quickly" in text:
        raise HackerNewsError(f"{what}: Hacker News asks to slow down (rate limited)")
    if "No such user" in text:
        raise HackerNewsError(f"{what}: Hacker News has no such user")
    if "Can't display that" in text or doc.xpath("//input[@name='acct']"):
        raise HackerNewsError(
            f"{what}: Hacker News shows this list to its owner only, and the login "
            "was not accepted (an expired cookie?)"
        )


def login_refusal(html: str) -> str:
    """Why a login page was answered instead of a session: Hacker News's own words."""
    text = " ".join(lxml.html.fromstring(html or "<html></html>").text_content().split())
    if "Bad login" in text:
        return "bad login (wrong username or password)"
    if "Validation required" in text or "captcha" in text.lower():
        return "Hacker News asks for a captcha; log in once in a browser, or give the cookie"
    return "no session cookie was set"
