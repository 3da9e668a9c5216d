"""Fetching one URL with limits: size, total time, timeouts, redirects, addresses.

A guarded fetcher (for URLs that come in events) resolves each host itself, refuses the
addresses its :class:`AddressPolicy` does not allow, and connects to the very address it
checked: the request goes to that IP, with the name in ``Host`` and as the TLS server
name, so the certificate is still checked against the name and a second DNS answer
(rebinding) never comes into play. Connections are not kept alive, so one made for one
name is never reused for another. Redirects are followed one hop at a time, each hop
checked again. An unguarded fetcher (for the API endpoints an operator configured)
keeps the limits but not the address checks.

Outcomes: :class:`Fetched`; :class:`UrlRefused` when asking again cannot help (a bad
URL, a forbidden address, 404/410, too large, an unwanted content type), which is a
dead letter; :class:`FetchFailed` when it may (a timeout, a refused connection, 5xx,
429), which the runtime retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass

import httpx

from functions.urls.address import AddressPolicy, IPAddress
from functions.urls.settings import UrlsSettings
from loom.runtime.invoke import HandlerFailed, PoisonEvent

__all__ = ["FetchFailed", "Fetched", "Fetcher", "Resolver", "UrlRefused", "system_resolve"]

Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]
REDIRECTS = frozenset({301, 302, 303, 307, 308})
RETRYABLE = frozenset({408, 425, 429})
_DEFAULT_PORT = {"http": 80, "https": 443}
_UNKNOWN_HOST = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}


class UrlRefused(PoisonEvent):
    """The URL can never be fetched as asked: the event becomes a dead letter."""


class FetchFailed(HandlerFailed):
    """The fetch failed in a way that may pass: the event is tried again later."""


@dataclass(frozen=True)
class Fetched:
    url: str  # where the body came from, after redirects
    status: int
    content_type: str  # media type in lower case without parameters; "" when not sent
    charset: str | None
    body: bytes


def short(url: object, limit: int = 200) -> str:
    text = str(url)
    return text if len(text) <= limit else text[: limit - 1] + "…"


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
    """``url`` parsed, if it is one Loom fetches: http(s), a host, no credentials."""
    try:
        parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise UrlRefused(f"{short(url)} is not a valid URL: {exc}") from None
    if parsed.scheme not in ("http", "https"):
        raise UrlRefused(f"{short(url)}: only http and https URLs are fetched")
    if parsed.userinfo:
        raise UrlRefused(f"{short(url)}: URLs with credentials (user:password@) are not fetched")
    if not parsed.host:
        raise UrlRefused(f"{short(url)} names no host")
    return parsed.copy_with(fragment=None)


def _media_type(header: str) -> tuple[str, str | None]:
    mime, *params = header.split(";")
    charset = None
    for param in params:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and value.strip():
            charset = value.strip().strip("\"'")
    return mime.strip().lower(), charset


def _status_problem(url: httpx.URL, status: int, reason: str) -> Exception | None:
    said = f"{short(url)} answered {status} {reason}".rstrip()
    if status >= 500 or status in RETRYABLE:
        return FetchFailed(f"{said}; it may pass")
    if status in (404, 410):
        return UrlRefused(f"{said}: it is not there")
    if status >= 400:
        return UrlRefused(f"{said}")
    if status >= 300:
        return UrlRefused(f"{said} without a usable Location")
    return None


def _certificate_problem(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


class Fetcher:
    """GETs with the limits of ``config``; guarded by ``policy`` unless it is ``None``."""

    def __init__(
        self,
        config: UrlsSettings,
        policy: AddressPolicy | None,
        *,
        resolve: Resolver = system_resolve,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self.config = config
        self.policy = policy
        self._resolve = resolve
        timeout = httpx.Timeout(connect=config.urls_connect_timeout_seconds,
                                read=config.urls_read_timeout_seconds,
                                write=config.urls_read_timeout_seconds,
                                pool=config.urls_connect_timeout_seconds)  # fmt: skip
        keepalive = 0 if policy is not None else 10
        self._client = httpx.AsyncClient(
            timeout=timeout,
            follow_redirects=False,
            trust_env=False,  # no proxies from the environment: they would skip the checks
            verify=verify,
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=keepalive),
            headers={"User-Agent": config.urls_user_agent},
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def get(
        self,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        accept: Callable[[str], None] | None = None,
    ) -> Fetched:
        """The body at ``url``. ``accept(media_type)`` may raise to refuse a content type
        before the body is read ("" when the server sent none)."""
        current = check_url(url)
        if params:
            current = current.copy_merge_params(dict(params))
        limit = self.config.urls_total_timeout_seconds
        try:
            async with asyncio.timeout(limit):
                return await self._follow(current, accept)
        except TimeoutError:
            raise FetchFailed(f"{short(current)} took longer than {limit:g} s") from None

    async def _follow(self, current: httpx.URL, accept: Callable[[str], None] | None) -> Fetched:
        for _ in range(self.config.urls_max_redirects + 1):
            async with self._open(current) as response:
                location = response.headers.get("location")
                if response.status_code in REDIRECTS and location:
                    try:
                        current = check_url(current.join(location))
                    except httpx.InvalidURL as exc:
                        raise UrlRefused(
                            f"{short(current)} redirects to a bad URL: {exc}"
                        ) from None
                    continue
                problem = _status_problem(current, response.status_code, response.reason_phrase)
                if problem is not None:
                    raise problem
                mime, charset = _media_type(response.headers.get("content-type", ""))
                if accept is not None:
                    accept(mime)
                body = await self._read(current, response)
                return Fetched(str(current), response.status_code, mime, charset, body)
        raise UrlRefused(
            f"{short(current)}: more than {self.config.urls_max_redirects} redirects "
            "(LOOM_URLS_MAX_REDIRECTS)"
        )

    async def _read(self, url: httpx.URL, response: httpx.Response) -> bytes:
        most = self.config.urls_max_bytes
        too_large = UrlRefused(
            f"{short(url)} is larger than {most} bytes (LOOM_URLS_MAX_BYTES); not read further"
        )
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > most:
            raise too_large  # said up front: nothing is read
        body = bytearray()
        try:
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > most:
                    raise too_large
        except httpx.DecodingError as exc:
            raise UrlRefused(f"{short(url)}: the body cannot be decoded: {exc}") from None
        except httpx.TimeoutException:
            raise FetchFailed(f"{short(url)}: the body stalled for more than "
                              f"{self.config.urls_read_timeout_seconds:g} s") from None  # fmt: skip
        except httpx.TransportError as exc:
            raise FetchFailed(f"{short(url)}: the body broke off: {exc}") from None
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
                    raise UrlRefused(
                        f"{short(url)}: {said}: {certificate.verify_message}"
                    ) from None
                failures.append(f"{target.host}: {exc or type(exc).__name__}")
                continue  # the next address, if the name has more
            except httpx.TimeoutException as exc:
                raise FetchFailed(f"{short(url)}: timed out ({type(exc).__name__})") from None
            except httpx.TransportError as exc:
                raise FetchFailed(f"{short(url)}: {type(exc).__name__}: {exc}") from None
            try:
                yield response
            finally:
                await response.aclose()
            return
        raise FetchFailed(f"{short(url)}: cannot connect ({'; '.join(failures)})")

    async def _routes(
        self, url: httpx.URL
    ) -> list[tuple[httpx.URL, dict[str, str], dict[str, str]]]:
        """Where to send a request for ``url``: the URL itself (unguarded), or per allowed
        address the URL with that address, its Host header and TLS server name."""
        if self.policy is None:
            return [(url, {}, {})]
        host = url.raw_host.decode("ascii")
        addresses = await self._addresses(url, host)
        allowed = [ip for ip in addresses if self.policy.refusal(ip) is None]
        if not allowed:
            ip = addresses[0]
            said = url.host if str(ip) == url.host else f"{url.host} resolves to {ip}, which"
            raise UrlRefused(
                f"{short(url)}: {said} is a {self.policy.refusal(ip)} address; only public "
                "addresses are fetched (LOOM_URLS_ALLOW_PRIVATE, LOOM_URLS_ALLOWED_NETWORKS)"
            )
        headers = {"Host": url.netloc.decode("ascii")}
        extensions = {"sni_hostname": host} if url.scheme == "https" else {}
        return [(url.copy_with(host=str(ip)), headers, extensions) for ip in allowed]

    async def _addresses(self, url: httpx.URL, host: str) -> list[IPAddress]:
        try:
            return [ipaddress.ip_address(host.strip("[]"))]
        except ValueError:
            pass  # a name
        seconds = self.config.urls_connect_timeout_seconds
        try:
            async with asyncio.timeout(seconds):
                found = await self._resolve(
                    host, url.port or (443 if url.scheme == "https" else 80)
                )
        except TimeoutError:
            raise FetchFailed(f"{short(url)}: resolving {host} took over {seconds:g} s") from None
        except socket.gaierror as exc:
            if exc.errno in _UNKNOWN_HOST:
                raise UrlRefused(f"{short(url)}: the host {host} does not exist") from None
            raise FetchFailed(f"{short(url)}: cannot resolve {host}: {exc}") from None
        if not found:
            raise UrlRefused(f"{short(url)}: the host {host} has no addresses")
        return found
