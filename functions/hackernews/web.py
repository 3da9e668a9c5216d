"""Fetching the page a liked item links to: size, time and redirect limits, and only
from public addresses (unless ``LOOM_HACKERNEWS_ALLOW_PRIVATE``).

The host is resolved here and every address it has is checked; the request then goes
to the checked address, with the name in ``Host`` and as the TLS server name (so the
certificate is still checked against the name, and a second DNS answer cannot point
elsewhere). Each redirect hop is checked again. Proxies from the environment are not
used: they would skip the checks.

Outcomes: :class:`Fetched`, with ``problem`` set and no body when asking again cannot
help (404, a type that is not read, too large, too many redirects, a host that does
not exist); :class:`AddressRefused` (a dead letter) for a URL that is not fetched at
all; :class:`TryLater` (retried by the runtime) for timeouts, refused connections,
5xx and 429.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from loom.runtime.invoke import HandlerFailed, PoisonEvent

__all__ = [
    "READABLE",
    "AddressRefused",
    "Fetched",
    "PageFetcher",
    "TryLater",
    "address_refusal",
    "system_resolve",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]

HTML = frozenset({"text/html", "application/xhtml+xml"})
PDF = frozenset({"application/pdf", "application/x-pdf"})
TEXT = frozenset({"text/plain", "text/markdown"})
READABLE = HTML | PDF | TEXT
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_RETRY_LATER = frozenset({408, 425, 429})
_NO_SUCH_HOST = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_PRIVATE = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12",
                                                    "192.168.0.0/16", "fc00::/7"))  # fmt: skip


class AddressRefused(PoisonEvent):
    """The URL is not fetched at all: not http(s), or an address that is not public."""


class TryLater(HandlerFailed):
    """The fetch failed in a way that may pass (timeout, 5xx, 429): retried later."""


@dataclass(frozen=True)
class Fetched:
    """What a URL gave: ``body`` is empty, and ``problem`` says why, when nothing was read."""

    url: str  # after redirects
    status: int | None
    content_type: str  # the header as sent, "" if none
    body: bytes = b""
    problem: str | None = None

    @property
    def media_type(self) -> str:
        return self.content_type.split(";", 1)[0].strip().lower()

    @property
    def charset(self) -> str | None:
        for param in self.content_type.split(";")[1:]:
            key, _, value = param.partition("=")
            if key.strip().lower() == "charset" and value.strip():
                return value.strip().strip("\"'")
        return None


def _kind(ip: IPAddress) -> str | None:
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if ip in _CGNAT or any(ip in net for net in _PRIVATE if net.version == ip.version):
        return "private"
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:
        return "private"
    if ip.is_reserved or not ip.is_global:
        return "reserved"
    return None


def address_refusal(ip: IPAddress, allow_private: bool = False) -> str | None:
    """What kind of address ``ip`` is when it may not be fetched from, else None. IPv6
    forms that carry an IPv4 address (mapped, NAT64, 6to4) are judged by it too."""
    forms: list[IPAddress] = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        carried = ip.ipv4_mapped
        if carried is None and ip in _NAT64:
            carried = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if carried is not None:  # an IPv4 destination in all but name
            forms = [carried]
        elif ip.sixtofour is not None:
            forms.append(ip.sixtofour)
    for form in forms:
        kind = _kind(form)
        if kind is not None and not (allow_private and kind in ("private", "loopback")):
            return kind
    return None


async def system_resolve(host: str, port: int) -> list[IPAddress]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    found: list[IPAddress] = []
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if ip not in found:
            found.append(ip)
    return found


def _check_url(url: str | httpx.URL) -> httpx.URL:
    try:
        parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise AddressRefused(f"{str(url)[:200]} is not a valid URL: {exc}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise AddressRefused(f"{str(url)[:200]}: only http(s) URLs with a host are fetched")
    if parsed.userinfo:
        raise AddressRefused(f"{str(url)[:200]}: URLs with credentials are not fetched")
    return parsed.copy_with(fragment=None)


def _bad_certificate(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


class PageFetcher:
    """GETs of linked pages, with limits, from the addresses the policy allows."""

    def __init__(
        self,
        *,
        user_agent: str,
        max_bytes: int,
        timeout: float,
        max_redirects: int,
        allow_private: bool = False,
        resolve: Resolver = system_resolve,
    ) -> None:
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.max_redirects = max_redirects
        self.allow_private = allow_private
        self._resolve = resolve
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(min(timeout, 20.0)),
            follow_redirects=False,
            trust_env=False,
            # no kept-alive connections: one opened to an address for one name is never
            # reused for another
            limits=httpx.Limits(max_keepalive_connections=0),
            headers={"User-Agent": user_agent, "Accept": "text/html,application/xhtml+xml,"
                     "application/pdf;q=0.9,text/plain;q=0.8,*/*;q=0.1"},
        )  # fmt: skip

    async def aclose(self) -> None:
        await self._client.aclose()

    async def get(self, url: str) -> Fetched:
        current = _check_url(url)
        try:
            async with asyncio.timeout(self.timeout):
                for _ in range(self.max_redirects + 1):
                    fetched, location = await self._hop(current)
                    if location is None:
                        return fetched
                    current = _check_url(current.join(location))
        except TimeoutError:
            raise TryLater(f"{str(current)[:200]} took longer than {self.timeout:g} s") from None
        return Fetched(str(current), None, "",
                       problem=f"more than {self.max_redirects} redirects")  # fmt: skip

    async def _hop(self, url: httpx.URL) -> tuple[Fetched, str | None]:
        """One request; the redirect's Location, if it is one."""
        addresses = await self._addresses(url)
        if isinstance(addresses, Fetched):
            return addresses, None
        host = url.raw_host.decode("ascii")
        failures = []
        for ip in addresses:
            request = self._client.build_request(
                "GET", url.copy_with(host=str(ip)), headers={"Host": url.netloc.decode("ascii")},
                extensions={"sni_hostname": host} if url.scheme == "https" else {},
            )  # fmt: skip
            try:
                response = await self._client.send(request, stream=True)
            except httpx.ConnectError as exc:
                bad = _bad_certificate(exc)
                if bad is not None:
                    return Fetched(str(url), None, "", problem=f"TLS certificate not valid for "
                                   f"{host}: {bad.verify_message}"), None  # fmt: skip
                failures.append(f"{ip}: {exc or type(exc).__name__}")
                continue
            except httpx.TransportError as exc:
                raise TryLater(f"{str(url)[:200]}: {type(exc).__name__}: {exc}") from None
            try:
                return await self._answer(url, response)
            finally:
                await response.aclose()
        raise TryLater(f"{str(url)[:200]}: cannot connect ({'; '.join(failures)})")

    async def _addresses(self, url: httpx.URL) -> list[IPAddress] | Fetched:
        host = url.raw_host.decode("ascii")
        try:
            addresses = [ipaddress.ip_address(host.strip("[]"))]
        except ValueError:
            try:
                addresses = await self._resolve(host, url.port or (443 if url.scheme == "https"
                                                                   else 80))  # fmt: skip
            except socket.gaierror as exc:
                if exc.errno in _NO_SUCH_HOST:
                    return Fetched(str(url), None, "", problem=f"the host {host} does not exist")
                raise TryLater(f"{str(url)[:200]}: cannot resolve {host}: {exc}") from None
        if not addresses:
            return Fetched(str(url), None, "", problem=f"the host {host} has no addresses")
        for ip in addresses:
            kind = address_refusal(ip, self.allow_private)
            if kind is not None:
                said = host if str(ip) == host.strip("[]") else f"{host} ({ip})"
                raise AddressRefused(
                    f"{str(url)[:200]}: {said} is a {kind} address; only public addresses are "
                    "fetched (LOOM_HACKERNEWS_ALLOW_PRIVATE)"
                )
        return addresses

    async def _answer(self, url: httpx.URL, response: httpx.Response) -> tuple[Fetched, str | None]:
        status = response.status_code
        location = response.headers.get("location")
        if status in _REDIRECTS and location:
            return Fetched(str(url), status, ""), location
        if status >= 500 or status in _RETRY_LATER:
            raise TryLater(f"{str(url)[:200]} answered {status}; trying again later")
        content_type = response.headers.get("content-type", "")
        fetched = Fetched(str(url), status, content_type)
        if not 200 <= status < 300:
            return _failed(fetched, f"answered {status} {response.reason_phrase}".strip()), None
        if fetched.media_type not in READABLE:
            return _failed(fetched, f"{fetched.media_type or 'no content type'} is not read"), None
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            return _failed(fetched, f"larger than {self.max_bytes} bytes"), None
        body = bytearray()
        try:
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > self.max_bytes:
                    return _failed(fetched, f"larger than {self.max_bytes} bytes"), None
        except httpx.DecodingError as exc:
            return _failed(fetched, f"the body cannot be decoded: {exc}"), None
        except httpx.TransportError as exc:
            raise TryLater(f"{str(url)[:200]}: the body broke off: {exc}") from None
        return Fetched(str(url), status, content_type, bytes(body)), None


def _failed(fetched: Fetched, problem: str) -> Fetched:
    return Fetched(fetched.url, fetched.status, fetched.content_type, b"", problem)
