"""Which addresses a URL may be fetched from: public ones, unless the policy says more.

Every address a name resolves to is sorted into a kind. IPv6 forms that carry an IPv4
address are judged by it: IPv4-mapped ``::ffff:a.b.c.d`` and NAT64 ``64:ff9b::/96`` by
the IPv4 address alone (``::ffff:127.0.0.1`` is loopback, ``64:ff9b::808:808`` public);
IPv4-compatible, 6to4 and Teredo addresses by both.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["PRIVATE_KINDS", "AddressPolicy", "IPAddress", "Network", "address_kind"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Kinds that ``allow_private`` opens; the rest open only through allowed networks.
PRIVATE_KINDS = frozenset({"private", "loopback"})

_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT, not global
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated IPv4-compatible addresses
_RFC1918 = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12",
                                                   "192.168.0.0/16"))  # fmt: skip
_ULA = ipaddress.ip_network("fc00::/7")


def _embedded(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    carried: list[ipaddress.IPv4Address] = []
    if ip.sixtofour is not None:
        carried.append(ip.sixtofour)
    if ip.teredo is not None:
        carried.extend(ip.teredo)  # the server and the client
    if ip in _COMPATIBLE and int(ip) > 1:
        carried.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return carried


def _own_kind(ip: IPAddress) -> str | None:
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED:
        return "private"
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:
        return "private"
    if ip.is_reserved:
        return "reserved"
    if ip.is_private:
        # is_private also holds documentation, benchmarking and other special ranges
        return "private" if _is_rfc1918_or_ula(ip) else "reserved"
    if not ip.is_global:
        return "reserved"
    return None


def _is_rfc1918_or_ula(ip: IPAddress) -> bool:
    if isinstance(ip, ipaddress.IPv4Address):
        return any(ip in net for net in _RFC1918)
    return ip in _ULA


def address_kind(ip: IPAddress) -> str | None:
    """``None`` for a public address, else what it is: ``private``, ``loopback``,
    ``link-local``, ``multicast``, ``reserved`` or ``unspecified``."""
    if isinstance(ip, ipaddress.IPv6Address):
        # an IPv4 destination in all but name: IPv4-mapped, or NAT64 (DNS64 networks)
        mapped = ip.ipv4_mapped
        if mapped is None and ip in _NAT64:
            mapped = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if mapped is not None:
            return _own_kind(mapped)
    kind = _own_kind(ip)
    if kind is not None or not isinstance(ip, ipaddress.IPv6Address):
        return kind
    for inner in _embedded(ip):
        inner_kind = _own_kind(inner)
        if inner_kind is not None:
            return inner_kind
    return None


@dataclass(frozen=True)
class AddressPolicy:
    """Public addresses always; private and loopback with ``allow_private``; anything in
    ``allowed`` (CIDRs the operator names). Link-local (cloud metadata at
    169.254.169.254), multicast, unspecified and reserved addresses only through
    ``allowed``."""

    allow_private: bool = False
    allowed: tuple[Network, ...] = ()

    @classmethod
    def of(cls, allow_private: bool, allowed: Iterable[Network] = ()) -> AddressPolicy:
        return cls(allow_private, tuple(allowed))

    def refusal(self, ip: IPAddress) -> str | None:
        """Why ``ip`` may not be fetched from (its kind), or ``None`` when it may."""
        if self._listed(ip):
            return None
        kind = address_kind(ip)
        if kind is None or (self.allow_private and kind in PRIVATE_KINDS):
            return None
        return kind

    def _listed(self, ip: IPAddress) -> bool:
        forms: list[IPAddress] = [ip]
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            forms.append(ip.ipv4_mapped)
        return any(form.version == net.version and form in net
                   for form in forms for net in self.allowed)  # fmt: skip
