"""Settings of the ``urls`` function (``LOOM_URLS_*`` besides the shared ``LOOM_*``)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from loom.settings import HttpUrl, LoomSettings, settings_for
from loom.web import Extractor, FetchOptions, Network

__all__ = ["UrlsSettings", "urls_settings"]


class UrlsSettings(LoomSettings):
    """How pages are fetched, what addresses may be reached, and where tweets and Hacker
    News items are looked up."""

    urls_max_bytes: int = Field(
        default=25 * 1024 * 1024,
        ge=1024,
        le=1024 * 1024 * 1024,
        description="Largest body read from one URL (after decompression); a larger one is a "
        "dead letter, and the download stops there.",
    )
    urls_total_timeout_seconds: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="Longest one fetch may take, redirects and body included; over it the "
        "event is retried later.",
    )
    urls_connect_timeout_seconds: float = Field(
        default=10.0, gt=0, le=300, description="Longest wait for name resolution and connect."
    )
    urls_read_timeout_seconds: float = Field(
        default=20.0, gt=0, le=600, description="Longest wait for the next bytes of an answer."
    )
    urls_max_redirects: int = Field(
        default=5, ge=0, le=30, description="Most redirects followed; each hop is checked again."
    )
    urls_user_agent: str = Field(
        default="loom-urls/1.0 (personal archive)",
        min_length=1,
        description="User-Agent sent with every request.",
    )
    urls_allow_private: bool = Field(
        default=False,
        description="Also fetch from private networks and this machine (10/8, 172.16/12, "
        "192.168/16, 100.64/10, fc00::/7, loopback). Link-local (cloud metadata at "
        "169.254.169.254), multicast, unspecified and reserved addresses stay refused.",
    )
    urls_allowed_networks: Annotated[list[Network], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated CIDRs that may be fetched whatever kind of address "
        "they are, e.g. `192.168.1.20/32,fd00:1::/64`.",
    )
    urls_twitter_oembed_url: HttpUrl = Field(
        default="https://publish.twitter.com/oembed",
        description="oEmbed endpoint asked for X/Twitter posts (`?url=<post>`).",
    )
    urls_hackernews_api_url: HttpUrl = Field(
        default="https://hacker-news.firebaseio.com",
        description="Base URL of the Hacker News API (`/v0/item/<id>.json`).",
    )
    urls_keep_pdf: bool = Field(
        default=True,
        description="Copy each PDF to the blob store (LOOM_STORE_BLOB_URL) and refer to it "
        "from the extracted event.",
    )

    urls_extract_timeout_seconds: float = Field(
        default=20.0,
        gt=0,
        le=600,
        description="Longest the text of one PDF or web page may take to extract; over it "
        "the extraction is stopped and the event is a dead letter (a document that took too "
        "long once would take too long again).",
    )
    urls_extract_workers: int = Field(
        default=2,
        ge=1,
        le=64,
        description="Worker processes that extract text (kept warm); more PDFs and pages "
        "than this wait their turn.",
    )
    urls_max_pdf_pages: int = Field(
        default=2000,
        ge=1,
        le=100_000,
        description="Most pages of one PDF whose text is extracted; the rest are left out "
        "(the page count is still the PDF's own).",
    )

    @field_validator("urls_allowed_networks", mode="before")
    @classmethod
    def _split_networks(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    def extractor(self) -> Extractor:
        """The worker processes that extract text, with this time limit (not started)."""
        return Extractor.from_settings(
            self,
            workers="urls_extract_workers",
            timeout_seconds="urls_extract_timeout_seconds",
            preload=("functions.urls.extract", "pypdf", "trafilatura"),
        )

    def fetch_options(self) -> FetchOptions:
        """The shared fetcher's options: these limits, guarded by these address rules."""
        return FetchOptions.from_settings(
            self,
            {
                "max_bytes": "urls_max_bytes",
                "total_timeout_seconds": "urls_total_timeout_seconds",
                "connect_timeout_seconds": "urls_connect_timeout_seconds",
                "read_timeout_seconds": "urls_read_timeout_seconds",
                "max_redirects": "urls_max_redirects",
                "user_agent": "urls_user_agent",
                "allow_private": "urls_allow_private",
                "allowed_networks": "urls_allowed_networks",
            },
        )


def urls_settings(settings: LoomSettings) -> UrlsSettings:
    """``settings`` as UrlsSettings: its shared values, ``LOOM_URLS_*`` from the env."""
    return settings_for(UrlsSettings, settings)
