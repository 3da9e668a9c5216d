"""What a fetch gives: :class:`Fetched`, or an error that says whether asking again helps.

:class:`FetchRefused` is permanent: asking again cannot help (a URL that is not
fetched, an address the policy refuses, a host that does not exist, a bad certificate,
404/410 and other 4xx, too many redirects, an unwanted content type, a body over the
limit or that cannot be decoded). Its ``reason`` says which, so a caller can tell a URL
it must never fetch (``url``, ``address``) from a page that merely has nothing to give.
:class:`FetchFailed` may pass: a timeout, a refused connection, a failed name lookup,
5xx, 408, 425 and 429. Both carry the URL they stopped at and, where the server
answered, its HTTP status and Content-Type header.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from loom.errors import LoomError

__all__ = [
    "FetchError",
    "FetchFailed",
    "FetchRefused",
    "Fetched",
    "Refusal",
    "media_type",
    "short_url",
]

Refusal = Literal[
    "url",  # not an http(s) URL with a host and no credentials
    "address",  # the name resolves only to addresses the policy refuses
    "host",  # the host does not exist, or has no addresses
    "certificate",  # the TLS certificate is not valid for the name
    "status",  # 4xx other than 408/425/429, or a 3xx without a usable Location
    "redirects",  # more redirects than allowed
    "content_type",  # a content type the caller does not read
    "too_large",  # the body is over the size limit
    "undecodable",  # the body cannot be decoded (a broken gzip stream, say)
]


def short_url(url: object, limit: int = 200) -> str:
    """``url`` as text, cut to ``limit`` characters for messages."""
    text = str(url)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def media_type(header: str) -> tuple[str, str | None]:
    """The media type of a Content-Type header in lower case without parameters ("" when
    there is none), and its charset if it names one."""
    mime, *params = header.split(";")
    charset = None
    for param in params:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and value.strip():
            charset = value.strip().strip("\"'")
    return mime.strip().lower(), charset


@dataclass(frozen=True)
class Fetched:
    """A body that was read in full."""

    url: str  # where the body came from, after redirects
    status: int
    content_type: str  # the header as sent; "" when none was
    body: bytes

    @property
    def media_type(self) -> str:
        return media_type(self.content_type)[0]

    @property
    def charset(self) -> str | None:
        return media_type(self.content_type)[1]


class FetchError(LoomError):
    """A fetch that gave no body. ``url`` is where it stopped (after redirects);
    ``status`` and ``content_type`` are the server's answer, where there was one."""

    permanent: ClassVar[bool] = False

    def __init__(
        self, detail: str, *, url: str, status: int | None = None, content_type: str = ""
    ) -> None:
        super().__init__(detail)
        self.url = url
        self.status = status
        self.content_type = content_type

    @property
    def media_type(self) -> str:
        return media_type(self.content_type)[0]


class FetchRefused(FetchError):
    """Asking again cannot help; ``reason`` says why."""

    permanent = True

    def __init__(
        self,
        detail: str,
        *,
        reason: Refusal,
        url: str,
        status: int | None = None,
        content_type: str = "",
    ) -> None:
        super().__init__(detail, url=url, status=status, content_type=content_type)
        self.reason: Refusal = reason


class FetchFailed(FetchError):
    """The fetch failed in a way that may pass: ask again later."""
