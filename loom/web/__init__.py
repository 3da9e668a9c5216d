"""Fetching URLs that come in events: public addresses only (resolved, pinned, checked on
every redirect), with size, time and redirect limits; and reading what was fetched in
child processes with a hard time limit."""

from loom.web.address import PRIVATE_KINDS, AddressPolicy, IPAddress, Network, address_kind
from loom.web.extractor import ExtractionFailed, Extractor, ExtractorUnavailable
from loom.web.fetch import (
    Accept,
    Fetcher,
    FetchOptions,
    Resolver,
    check_url,
    system_resolve,
)
from loom.web.outcome import (
    Fetched,
    FetchError,
    FetchFailed,
    FetchRefused,
    Refusal,
    media_type,
    short_url,
)

__all__ = [
    "PRIVATE_KINDS",
    "Accept",
    "AddressPolicy",
    "ExtractionFailed",
    "Extractor",
    "ExtractorUnavailable",
    "FetchError",
    "FetchFailed",
    "FetchOptions",
    "FetchRefused",
    "Fetched",
    "Fetcher",
    "IPAddress",
    "Network",
    "Refusal",
    "Resolver",
    "address_kind",
    "check_url",
    "media_type",
    "short_url",
    "system_resolve",
]
