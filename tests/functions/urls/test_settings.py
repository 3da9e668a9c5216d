"""The settings of the urls function, and the fetcher options they make (the address
rules themselves are tested in tests/loom/web)."""

from __future__ import annotations

import ipaddress

import pytest

from functions.urls.settings import UrlsSettings, urls_settings
from loom.errors import ConfigError
from loom.settings import LoomSettings, load_settings
from loom.web import AddressPolicy


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
    assert (config.urls_extract_timeout_seconds, config.urls_extract_workers) == (20, 2)
    assert config.urls_max_pdf_pages == 2000


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("urls_allowed_networks", "192.168.1.0/33"),
        ("urls_allowed_networks", "not-a-network"),
        ("urls_twitter_oembed_url", "ftp://oembed.example"),
        ("urls_max_bytes", "0"),
        ("urls_extract_timeout_seconds", "0"),
        ("urls_max_pdf_pages", "0"),
    ],
)
def test_a_bad_setting_names_its_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"LOOM_{name.upper()}"):
        load_settings(UrlsSettings, **{name: value})


def test_the_settings_become_the_fetchers_options() -> None:
    config = UrlsSettings(urls_max_bytes=2048, urls_total_timeout_seconds=9,
                          urls_connect_timeout_seconds=3, urls_read_timeout_seconds=4,
                          urls_max_redirects=1, urls_user_agent="me/1",
                          urls_allow_private=True,
                          urls_allowed_networks="169.254.0.0/16")  # fmt: skip
    options = config.fetch_options()
    assert (options.max_bytes, options.total_timeout_seconds) == (2048, 9)
    assert (options.connect_timeout_seconds, options.read_timeout_seconds) == (3, 4)
    assert (options.max_redirects, options.user_agent) == (1, "me/1")
    assert options.policy == AddressPolicy(True, (ipaddress.ip_network("169.254.0.0/16"),))
    assert options.named("max_bytes") == " (LOOM_URLS_MAX_BYTES)"
    assert options.named("policy") == " (LOOM_URLS_ALLOW_PRIVATE, LOOM_URLS_ALLOWED_NETWORKS)"


def test_the_settings_become_the_extractors_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOM_URLS_EXTRACT_TIMEOUT_SECONDS", "7.5")
    monkeypatch.setenv("LOOM_URLS_EXTRACT_WORKERS", "3")
    config = urls_settings(LoomSettings())
    extractor = config.extractor()
    assert (extractor.timeout_seconds, extractor.workers) == (7.5, 3)
    assert extractor.setting == "LOOM_URLS_EXTRACT_TIMEOUT_SECONDS"
