"""The address rules on their own, and the settings that change them."""

from __future__ import annotations

import ipaddress

import pytest

from functions.urls.address import AddressPolicy, address_kind
from functions.urls.settings import UrlsSettings, urls_settings
from loom.errors import ConfigError
from loom.settings import LoomSettings, load_settings


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


def test_settings_come_from_loom_urls_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOM_URLS_ALLOWED_NETWORKS", "192.168.1.20/32, fd00:1::/64")
    monkeypatch.setenv("LOOM_URLS_MAX_BYTES", "1048576")
    monkeypatch.setenv("LOOM_URLS_HACKERNEWS_API_URL", "http://hn.internal:8080/")
    config = urls_settings(LoomSettings())
    assert config.urls_allowed_networks == [ipaddress.ip_network("192.168.1.20/32"),
                                            ipaddress.ip_network("fd00:1::/64")]  # fmt: skip
    assert config.urls_max_bytes == 1_048_576
    assert config.urls_hackernews_api_url == "http://hn.internal:8080"
    assert config.urls_allow_private is False


def test_the_defaults() -> None:
    config = UrlsSettings()
    assert config.urls_twitter_oembed_url == "https://publish.twitter.com/oembed"
    assert config.urls_hackernews_api_url == "https://hacker-news.firebaseio.com"
    assert config.urls_allowed_networks == []
    assert config.urls_max_redirects == 5


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("urls_allowed_networks", "192.168.1.0/33"),
        ("urls_allowed_networks", "not-a-network"),
        ("urls_twitter_oembed_url", "ftp://oembed.example"),
        ("urls_max_bytes", "0"),
    ],
)
def test_a_bad_setting_names_its_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"LOOM_{name.upper()}"):
        load_settings(UrlsSettings, **{name: value})
