"""The Hacker News site and API as the fetcher uses them, for one run.

Requests to the site (list pages, the login) are spaced ``LOOM_HACKERNEWS_PAGE_DELAY_SECONDS``
apart; item look-ups go to the API, which is made for that. Errors are left to the
fetch host, which counts them and backs off: an error status raises, and a page that
is no list raises :class:`~functions.hackernews.pages.HackerNewsError`. The session
cookie is sent in a header of the upvoted requests only, and never logged.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Self

import httpx

from functions.hackernews.pages import HackerNewsError, ListPage, login_refusal, parse_list
from functions.hackernews.settings import HackerNewsSettings, HnAccount, Kind

__all__ = ["HackerNewsSite"]

_API_CONCURRENCY = 4


class HackerNewsSite:
    """An HTTP client of the site and the API: paced, with a timeout and a user agent."""

    def __init__(self, config: HackerNewsSettings) -> None:
        self.config = config
        self._client = httpx.AsyncClient(
            timeout=config.hackernews_timeout_seconds,
            headers={"User-Agent": config.hackernews_user_agent},
            follow_redirects=False,
        )
        self._api = asyncio.Semaphore(_API_CONCURRENCY)
        self._last: float | None = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.aclose()

    async def _pace(self) -> None:
        if self._last is not None:
            wait = self._last + self.config.hackernews_page_delay_seconds - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        self._last = time.monotonic()

    async def session(self, account: HnAccount) -> str:
        """The value of the account's ``user`` cookie: the one configured, or a new one
        from logging in with the password."""
        if account.cookie is not None:
            return account.cookie.get_secret_value()
        if account.password is None:
            raise HackerNewsError(f"{account.username}: no password or cookie to log in with")
        await self._pace()
        response = await self._client.post(
            f"{self.config.hackernews_site_url}/login",
            data={"acct": account.username, "pw": account.password.get_secret_value(),
                  "goto": "news"},
        )  # fmt: skip
        self._client.cookies.clear()  # the cookie goes in a header, only where it is needed
        if response.status_code >= 500:
            response.raise_for_status()
        cookie = _user_cookie(response)
        if cookie is None:
            raise HackerNewsError(
                f"cannot log in to Hacker News as {account.username}: "
                f"{login_refusal(response.text)}"
            )
        return cookie

    async def list_page(
        self, kind: Kind, username: str, page: int, cookie: str | None = None
    ) -> ListPage:
        """Page ``page`` (from 1) of ``username``'s favourites or upvoted items."""
        await self._pace()
        params = {"id": username, **({"p": str(page)} if page > 1 else {})}
        headers = {"Cookie": f"user={cookie}"} if cookie else {}
        response = await self._client.get(
            f"{self.config.hackernews_site_url}/{kind}", params=params, headers=headers
        )
        response.raise_for_status()
        what = f"{username}'s {kind} (page {page})"
        if response.status_code != 200:
            raise HackerNewsError(f"{what}: Hacker News answered {response.status_code}")
        return parse_list(response.text, what=what)

    async def item(self, item_id: int) -> dict[str, Any] | None:
        """The API's item (title, url, by, time, score, type, text …); None if there is none."""
        async with self._api:
            response = await self._client.get(
                f"{self.config.hackernews_api_url}/v0/item/{item_id}.json"
            )
        response.raise_for_status()
        body = response.json()
        return body if isinstance(body, dict) else None


def _user_cookie(response: httpx.Response) -> str | None:
    """The ``user`` cookie a successful login sets (read from the header: the cookie may be
    ``Secure``, and the answer comes over http in tests)."""
    for header in response.headers.get_list("set-cookie"):
        name, _, rest = header.partition("=")
        value = rest.split(";", 1)[0].strip()
        if name.strip() == "user" and value:
            return value
    return None
