"""Fetching one URL with limits: size, total time, timeouts, redirects, addresses.

A guarded fetcher (for URLs that come in events) resolves each host itself, refuses the
addresses its :class:`~loom.web.address.AddressPolicy` does not allow, and connects to
the very address it checked: the request goes to that IP, with the name in ``Host`` and
as the TLS server name, so the certificate is still checked against the name and a
second DNS answer (rebinding) never comes into play. A name's refused addresses are
never connected to; its allowed ones are tried in turn. Connections are not kept alive,
so one made for one name is never reused for another. Redirects are followed one hop at
a time, each hop checked again. Proxies from the environment are not used: they would
skip the checks. An unguarded fetcher (``policy=None``, for the API endpoints an
operator configured) keeps the limits but not the address checks.

The body is streamed and read no further than ``max_bytes`` (after decompression, which
is done here a chunk at a time and never past the limit, so a compressed bomb stops
there too, holding little more than ``max_bytes``; see :mod:`loom.web.decode`); a
Content-Length over it is refused before reading.
Outcomes are in :mod:`loom.web.outcome`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, TypedDict

import httpx
from pydantic_settings import BaseSettings

from loom.settings import variable
from loom.web.address import AddressPolicy, IPAddress
from loom.web.decode import ACCEPT_ENCODING, BoundedDecoder, TooLarge, Undecodable
from loom.web.outcome import Fetched, FetchFailed, FetchRefused, media_type, short_url

__all__ = ["Accept", "FetchOptions", "Fetcher", "Resolver", "check_url", "system_resolve"]

Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]
# The media types a caller reads ("" stands for a body sent without one), or a predicate.
Accept = Collection[str] | Callable[[str], bool]

REDIRECTS = frozenset({301, 302, 303, 307, 308})
RETRYABLE = frozenset({408, 425, 429})
_POLICY = ("allow_private", "allowed_networks")  # the fields that make a policy
_UNKNOWN_HOST = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}


class _Answer(TypedDict):
    """What an error says of the server's answer."""

    url: str
    status: int | None
    content_type: str


@dataclass(frozen=True)
class FetchOptions:
    """The limits of a :class:`Fetcher` and the addresses it may reach.

    ``policy`` ``None`` fetches from any address (for endpoints an operator configured,
    never for URLs from events). ``accept`` is the Accept header sent, if any.
    ``names`` maps an option (``max_bytes``, ``total_timeout_seconds``,
    ``read_timeout_seconds``, ``max_redirects``, ``policy``) to the setting(s) that set
    it, which errors then quote.
    """

    max_bytes: int = 25 * 1024 * 1024
    total_timeout_seconds: float = 60.0
    connect_timeout_seconds: float = 10.0
    read_timeout_seconds: float = 20.0
    max_redirects: int = 5
    user_agent: str = "loom/1.0"
    accept: str | None = None
    policy: AddressPolicy | None = field(default_factory=AddressPolicy)
    names: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        positive = {"max_bytes": self.max_bytes,
                    "total_timeout_seconds": self.total_timeout_seconds,
                    "connect_timeout_seconds": self.connect_timeout_seconds,
                    "read_timeout_seconds": self.read_timeout_seconds}  # fmt: skip
        for name, value in positive.items():
            if value <= 0:
                raise ValueError(f"{name} must be more than 0, not {value}")
        if self.max_redirects < 0:
            raise ValueError(f"max_redirects must be 0 or more, not {self.max_redirects}")

    @classmethod
    def from_settings(
        cls, settings: BaseSettings, fields: Mapping[str, str], **options: Any
    ) -> FetchOptions:
        """Options that fields of ``settings`` set, each quoted by its variable in the
        errors it causes. ``fields`` maps an option to the field that sets it, or
        ``allow_private`` and ``allowed_networks`` to the fields that make ``policy``
        (:meth:`AddressPolicy.of`); ``options`` gives the others as they are."""
        given = {option: getattr(settings, field) for option, field in fields.items()}
        names = {option: variable(type(settings), field) for option, field in fields.items()}
        policy = [fields[option] for option in _POLICY if option in fields]
        if policy:
            options["policy"] = AddressPolicy.of(
                given.pop("allow_private", False), given.pop("allowed_networks", ())
            )
            names = {option: name for option, name in names.items() if option not in _POLICY}
            names["policy"] = variable(type(settings), *policy)
        return cls(**given, **options, names=names)

    def named(self, option: str) -> str:
        """`` (LOOM_…)``: the setting behind ``option`` for a message, or ""."""
        name = self.names.get(option)
        return f" ({name})" if name else ""


async def system_resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to, in the order the system gives them."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    found: list[IPAddress] = []
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if ip not in found:
            found.append(ip)
    return found


def check_url(url: str | httpx.URL) -> httpx.URL:
    """``url`` parsed, if it is one Loom fetches: http(s), a host, no credentials; its
    fragment dropped. Else :class:`FetchRefused` (reason ``url``)."""

    def refused(why: str) -> FetchRefused:
        return FetchRefused(f"{short_url(url)}{why}", reason="url", url=str(url))

    try:
        parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise refused(f" is not a valid URL: {exc}") from None
    if parsed.scheme not in ("http", "https"):
        raise refused(": only http and https URLs are fetched")
    if parsed.userinfo:
        raise refused(": URLs with credentials (user:password@) are not fetched")
    if not parsed.host:
        raise refused(" names no host")
    return parsed.copy_with(fragment=None)


def _accepts(accept: Accept | None, mime: str) -> bool:
    if accept is None:
        return True
    return accept(mime) if callable(accept) else mime in accept


def _certificate_problem(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


class Fetcher:
    """GETs with the limits of ``options``, from the addresses its policy allows."""

    def __init__(
        self,
        options: FetchOptions,
        *,
        resolve: Resolver = system_resolve,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self.options = options
        self._resolve = resolve
        timeout = httpx.Timeout(connect=options.connect_timeout_seconds,
                                read=options.read_timeout_seconds,
                                write=options.read_timeout_seconds,
                                pool=options.connect_timeout_seconds)  # fmt: skip
        # only the codings read here, a chunk at a time and never past max_bytes
        headers = {"User-Agent": options.user_agent, "Accept-Encoding": ACCEPT_ENCODING}
        if options.accept:
            headers["Accept"] = options.accept
        # guarded: no kept-alive connections, so one opened to an address for one name is
        # never reused for another
        keepalive = 0 if options.policy is not None else 10
        self._client = httpx.AsyncClient(
            timeout=timeout,
            follow_redirects=False,
            trust_env=False,  # no proxies from the environment: they would skip the checks
            verify=verify,
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=keepalive),
            headers=headers,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def get(
        self, url: str, *, params: Mapping[str, str] | None = None, accept: Accept | None = None
    ) -> Fetched:
        """The body at ``url``. ``accept`` (media types, or a predicate of one) refuses
        any other content type before the body is read."""
        current = check_url(url)
        if params:
            current = current.copy_merge_params(dict(params))
        limit = self.options.total_timeout_seconds
        try:
            async with asyncio.timeout(limit):
                return await self._follow(current, accept)
        except TimeoutError:
            said = f"{short_url(current)} took longer than {limit:g} s"
            raise FetchFailed(said + self.options.named("total_timeout_seconds"),
                              url=str(current)) from None  # fmt: skip

    async def _follow(self, current: httpx.URL, accept: Accept | None) -> Fetched:
        most = self.options.max_redirects
        for _ in range(most + 1):
            async with self._open(current) as response:
                status = response.status_code
                location = response.headers.get("location")
                if status in REDIRECTS and location:
                    try:
                        current = check_url(current.join(location))
                    except httpx.InvalidURL as exc:
                        raise FetchRefused(f"{short_url(current)} redirects to a bad URL: {exc}",
                                           reason="url", url=str(current),
                                           status=status) from None  # fmt: skip
                    continue
                content_type = response.headers.get("content-type", "")
                self._check_status(current, response, content_type)
                mime = media_type(content_type)[0]
                if not _accepts(accept, mime):
                    raise FetchRefused(
                        f"{short_url(current)} is {mime or 'sent without a content type'}, "
                        "which is not read", reason="content_type", url=str(current),
                        status=status, content_type=content_type,
                    )  # fmt: skip
                body = await self._read(current, response, content_type)
                return Fetched(str(current), status, content_type, body)
        named = self.options.named("max_redirects")
        raise FetchRefused(f"{short_url(current)}: more than {most} redirects{named}",
                           reason="redirects", url=str(current))  # fmt: skip

    def _check_status(self, url: httpx.URL, response: httpx.Response, content_type: str) -> None:
        status = response.status_code
        said = f"{short_url(url)} answered {status} {response.reason_phrase}".rstrip()
        answer = _Answer(url=str(url), status=status, content_type=content_type)
        if status >= 500 or status in RETRYABLE:
            raise FetchFailed(f"{said}; it may pass", **answer)
        if status in (404, 410):
            raise FetchRefused(f"{said}: it is not there", reason="status", **answer)
        if status >= 400:
            raise FetchRefused(said, reason="status", **answer)
        if status >= 300:
            raise FetchRefused(f"{said} without a usable Location", reason="status", **answer)

    async def _read(self, url: httpx.URL, response: httpx.Response, content_type: str) -> bytes:
        most = self.options.max_bytes
        answer = _Answer(url=str(url), status=response.status_code, content_type=content_type)
        too_large = FetchRefused(
            f"{short_url(url)} is larger than {most} bytes{self.options.named('max_bytes')}; "
            "not read further", reason="too_large", **answer,
        )  # fmt: skip
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > most:
            raise too_large  # said up front: nothing is read
        body = bytearray()
        try:
            decoder = BoundedDecoder(response.headers.get("content-encoding", ""), most)
            async for chunk in response.aiter_raw():
                for piece in decoder.feed(chunk):
                    body += piece
            body += decoder.flush()
        except TooLarge:
            raise too_large from None
        except Undecodable as exc:
            raise FetchRefused(f"{short_url(url)}: the body cannot be decoded: {exc}",
                               reason="undecodable", **answer) from None  # fmt: skip
        except httpx.TimeoutException:
            seconds = self.options.read_timeout_seconds
            raise FetchFailed(f"{short_url(url)}: the body stalled for more than {seconds:g} s"
                              f"{self.options.named('read_timeout_seconds')}",
                              **answer) from None  # fmt: skip
        except httpx.TransportError as exc:
            raise FetchFailed(f"{short_url(url)}: the body broke off: {exc}", **answer) from None
        return bytes(body)

    @contextlib.asynccontextmanager
    async def _open(self, url: httpx.URL) -> AsyncIterator[httpx.Response]:
        """The answer to GET ``url``, its body not read yet."""
        failures: list[str] = []
        for target, headers, extensions in await self._routes(url):
            request = self._client.build_request("GET", target, headers=headers,
                                                 extensions=extensions)  # fmt: skip
            try:
                response = await self._client.send(request, stream=True)
            except httpx.ConnectError as exc:
                certificate = _certificate_problem(exc)
                if certificate is not None:
                    said = f"the TLS certificate is not valid for {url.host}"
                    raise FetchRefused(
                        f"{short_url(url)}: {said}: {certificate.verify_message}",
                        reason="certificate", url=str(url),
                    ) from None  # fmt: skip
                failures.append(f"{target.host}: {exc or type(exc).__name__}")
                continue  # the next address, if the name has more
            except httpx.TimeoutException as exc:
                raise FetchFailed(f"{short_url(url)}: timed out ({type(exc).__name__})",
                                  url=str(url)) from None  # fmt: skip
            except httpx.TransportError as exc:
                raise FetchFailed(f"{short_url(url)}: {type(exc).__name__}: {exc}",
                                  url=str(url)) from None  # fmt: skip
            try:
                yield response
            finally:
                await response.aclose()
            return
        raise FetchFailed(f"{short_url(url)}: cannot connect ({'; '.join(failures)})",
                          url=str(url))  # fmt: skip

    async def _routes(
        self, url: httpx.URL
    ) -> list[tuple[httpx.URL, dict[str, str], dict[str, str]]]:
        """Where to send a request for ``url``: the URL itself (unguarded), or per allowed
        address the URL with that address, its Host header and TLS server name."""
        policy = self.options.policy
        if policy is None:
            return [(url, {}, {})]
        host = url.raw_host.decode("ascii")
        addresses = await self._addresses(url, host)
        allowed = [ip for ip in addresses if policy.refusal(ip) is None]
        if not allowed:
            ip = addresses[0]
            said = url.host if str(ip) == url.host else f"{url.host} resolves to {ip}, which"
            raise FetchRefused(
                f"{short_url(url)}: {said} is a {policy.refusal(ip)} address; only public "
                f"addresses are fetched{self.options.named('policy')}",
                reason="address", url=str(url),
            )  # fmt: skip
        headers = {"Host": url.netloc.decode("ascii")}
        extensions = {"sni_hostname": host} if url.scheme == "https" else {}
        return [(url.copy_with(host=str(ip)), headers, extensions) for ip in allowed]

    async def _addresses(self, url: httpx.URL, host: str) -> list[IPAddress]:
        try:
            return [ipaddress.ip_address(host.strip("[]"))]
        except ValueError:
            pass  # a name
        seconds = self.options.connect_timeout_seconds
        try:
            async with asyncio.timeout(seconds):
                found = await self._resolve(
                    host, url.port or (443 if url.scheme == "https" else 80)
                )
        except TimeoutError:
            raise FetchFailed(f"{short_url(url)}: resolving {host} took over {seconds:g} s",
                              url=str(url)) from None  # fmt: skip
        except socket.gaierror as exc:
            if exc.errno in _UNKNOWN_HOST:
                raise FetchRefused(f"{short_url(url)}: the host {host} does not exist",
                                   reason="host", url=str(url)) from None  # fmt: skip
            raise FetchFailed(f"{short_url(url)}: cannot resolve {host}: {exc}",
                              url=str(url)) from None  # fmt: skip
        if not found:
            raise FetchRefused(f"{short_url(url)}: the host {host} has no addresses",
                               reason="host", url=str(url))  # fmt: skip
        return found
