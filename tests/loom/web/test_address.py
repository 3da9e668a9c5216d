"""The address rules on their own: what kind each address is, and what each policy lets
through."""

from __future__ import annotations

import ipaddress

import pytest

from loom.web import AddressPolicy, address_kind


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("93.184.215.14", None),
        ("2606:4700:4700::1111", None),
        ("::ffff:93.184.215.14", None),  # IPv4-mapped public
        ("64:ff9b::5db8:d70e", None),  # NAT64 of a public address (DNS64 networks)
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("64:ff9b::7f00:1", "loopback"),
        ("2002:7f00:1::1", "loopback"),  # 6to4 around 127.0.0.1
        ("10.0.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("100.64.0.1", "private"),  # carrier-grade NAT
        ("fd00::1", "private"),
        ("::ffff:10.0.0.1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("::ffff:169.254.169.254", "link-local"),
        ("224.0.0.251", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("192.0.2.1", "reserved"),  # documentation
        ("2001:db8::1", "reserved"),
        ("0.1.2.3", "reserved"),
    ],
)
def test_addresses_are_sorted_by_kind(address: str, kind: str | None) -> None:
    assert address_kind(ipaddress.ip_address(address)) == kind


def test_what_each_policy_allows() -> None:
    ip = ipaddress.ip_address
    strict = AddressPolicy()
    assert strict.refusal(ip("8.8.8.8")) is None
    assert strict.refusal(ip("192.168.1.5")) == "private"
    home = AddressPolicy(allow_private=True)
    assert home.refusal(ip("192.168.1.5")) is None
    assert home.refusal(ip("127.0.0.1")) is None
    assert home.refusal(ip("169.254.169.254")) == "link-local"
    listed = AddressPolicy.of(False, [ipaddress.ip_network("169.254.0.0/16")])
    assert listed.refusal(ip("169.254.169.254")) is None
    assert listed.refusal(ip("::ffff:169.254.169.254")) is None
    assert listed.refusal(ip("10.0.0.1")) == "private"


@pytest.mark.parametrize(
    ("address", "kind", "kind_if_private_allowed"),
    [
        ("93.184.215.14", None, None),
        ("2606:2800:21f:cb07:6820:80da:af6b:8b2c", None, None),
        ("127.0.0.1", "loopback", None),
        ("::1", "loopback", None),
        ("::ffff:127.0.0.1", "loopback", None),
        ("64:ff9b::7f00:1", "loopback", None),
        ("10.1.2.3", "private", None),
        ("192.168.1.20", "private", None),
        ("100.64.0.1", "private", None),
        ("fd00::1", "private", None),
        ("169.254.169.254", "link-local", "link-local"),
        ("fe80::1", "link-local", "link-local"),
        ("0.0.0.0", "unspecified", "unspecified"),
        ("224.0.0.1", "multicast", "multicast"),
        ("192.0.2.1", "reserved", "reserved"),
    ],
)
def test_allowing_private_opens_private_and_loopback_only(
    address: str, kind: str | None, kind_if_private_allowed: str | None
) -> None:
    ip = ipaddress.ip_address(address)
    assert AddressPolicy().refusal(ip) == kind
    assert AddressPolicy(allow_private=True).refusal(ip) == kind_if_private_allowed
