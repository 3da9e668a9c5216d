"""Settings of the ``hackernews`` fetcher and function (``LOOM_HACKERNEWS_*``).

Accounts are a JSON list in ``LOOM_HACKERNEWS_ACCOUNTS``::

    [{"username": "ada_hn"},
     {"username": "grace", "password": "…", "kinds": ["favorites", "upvoted"]}]

Favourites are public; upvotes are shown to their owner only, so ``upvoted`` needs the
account's password (Loom logs in on each run) or the value of its ``user`` cookie.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from loom.settings import HttpUrl, LoomSettings, settings_for
from loom.web import Extractor, FetchOptions

__all__ = ["HackerNewsSettings", "HnAccount", "Kind", "hackernews_settings"]

Kind = Literal["favorites", "upvoted"]
# What linked pages are asked for: the types that are read, most wanted first.
PAGE_ACCEPT = "text/html,application/xhtml+xml,application/pdf;q=0.9,text/plain;q=0.8,*/*;q=0.1"


class HnAccount(BaseModel):
    """One Hacker News account whose likes are fetched; ``key`` is its username."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    username: str = Field(pattern=r"^[A-Za-z0-9_-]{1,32}$", description="The Hacker News username.")
    password: SecretStr | None = Field(
        default=None, description="Password, to log in for the upvoted list (never logged)."
    )
    cookie: SecretStr | None = Field(
        default=None,
        description="Instead of the password: the value of the `user` cookie of a logged-in "
        "browser session (`name&token`).",
    )
    kinds: tuple[Kind, ...] = Field(
        default=(),
        description="Lists to read; default: favorites, and upvoted when a password or "
        "cookie is given.",
    )

    @property
    def key(self) -> str:
        return self.username

    @property
    def can_log_in(self) -> bool:
        return bool(self.password and self.password.get_secret_value()) or bool(
            self.cookie and self.cookie.get_secret_value()
        )

    @field_validator("cookie")
    @classmethod
    def _bare_cookie(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        bare = value.get_secret_value().strip().removeprefix("user=").split(";")[0].strip()
        return SecretStr(bare) if bare else None

    @model_validator(mode="after")
    def _kinds(self) -> HnAccount:
        if not self.kinds:
            kinds: tuple[Kind, ...] = ("favorites", "upvoted")
            object.__setattr__(self, "kinds", kinds if self.can_log_in else kinds[:1])
        elif len(set(self.kinds)) != len(self.kinds):
            raise ValueError(f"{self.username}: a kind is named twice in {list(self.kinds)}")
        if "upvoted" in self.kinds and not self.can_log_in:
            raise ValueError(
                f"{self.username}: the upvoted list is shown to its owner only; "
                "give the account's password or its `user` cookie"
            )
        return self


class HackerNewsSettings(LoomSettings):
    """Which accounts are read, where Hacker News is, and how linked pages are fetched."""

    hackernews_accounts: list[HnAccount] = Field(
        default_factory=list,
        description="JSON list of accounts: username, optional password or cookie (secrets), "
        'optional kinds ["favorites", "upvoted"].',
    )
    hackernews_site_url: HttpUrl = Field(
        default="https://news.ycombinator.com",
        description="The Hacker News site: favourites, upvoted and login pages.",
    )
    hackernews_api_url: HttpUrl = Field(
        default="https://hacker-news.firebaseio.com",
        description="The Hacker News API (`/v0/item/{id}.json`): titles, links, post texts.",
    )
    hackernews_user_agent: str = Field(
        default="loom-hackernews/1.0 (personal archive)",
        min_length=1,
        description="User-Agent of every request to Hacker News and to linked pages.",
    )
    hackernews_timeout_seconds: float = Field(
        default=20.0, gt=0, le=300, description="Longest one request to Hacker News may take."
    )
    hackernews_page_delay_seconds: float = Field(
        default=5.0,
        ge=0,
        le=300,
        description="Pause between two requests to the site (list pages, login), to be polite.",
    )
    hackernews_max_pages: int = Field(
        default=10,
        ge=1,
        le=100,
        description="Most pages (30 items each) read of one list per run; the first run goes "
        "this far back, later ones stop at the first item already seen.",
    )
    hackernews_fetch_max_bytes: int = Field(
        default=10 * 1024 * 1024,
        ge=1024,
        le=512 * 1024 * 1024,
        description="Largest linked page or PDF read; a larger one gives an empty text.",
    )
    hackernews_fetch_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        le=600,
        description="Longest fetch of one linked page, redirects included; over it the "
        "event is tried again later.",
    )
    hackernews_fetch_max_redirects: int = Field(
        default=5, ge=0, le=30, description="Most redirects followed; each hop is checked again."
    )
    hackernews_allow_private: bool = Field(
        default=False,
        description="Also fetch linked pages from private networks and this machine "
        "(10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7, loopback). Link-local "
        "(cloud metadata), multicast and reserved addresses stay refused.",
    )
    hackernews_max_text_chars: int = Field(
        default=500_000,
        ge=1000,
        le=2_000_000,
        description="Longest text kept of one page; the rest is cut off.",
    )
    hackernews_extract_timeout_seconds: float = Field(
        default=20.0,
        gt=0,
        le=600,
        description="Longest the text of one linked page or PDF may take to extract; over "
        "it the extraction is stopped and the item's content has an empty text (it would "
        "take as long again).",
    )
    hackernews_extract_workers: int = Field(
        default=2,
        ge=1,
        le=64,
        description="Worker processes that extract text (kept warm); more pages than this "
        "wait their turn.",
    )
    hackernews_max_pdf_pages: int = Field(
        default=2000,
        ge=1,
        le=100_000,
        description="Most pages of one linked PDF whose text is extracted.",
    )

    @property
    def accounts(self) -> list[HnAccount]:
        return self.hackernews_accounts

    def extractor(self) -> Extractor:
        """The worker processes that extract text, with this time limit (not started)."""
        return Extractor.from_settings(
            self,
            workers="hackernews_extract_workers",
            timeout_seconds="hackernews_extract_timeout_seconds",
            preload=("functions.hackernews.content", "pypdf", "trafilatura"),
        )

    def page_options(self) -> FetchOptions:
        """The shared fetcher's options for linked pages: these limits, public addresses
        (and private ones with LOOM_HACKERNEWS_ALLOW_PRIVATE)."""
        seconds = self.hackernews_fetch_timeout_seconds
        return FetchOptions.from_settings(
            self,
            {
                "max_bytes": "hackernews_fetch_max_bytes",
                "total_timeout_seconds": "hackernews_fetch_timeout_seconds",
                "max_redirects": "hackernews_fetch_max_redirects",
                "user_agent": "hackernews_user_agent",
                "allow_private": "hackernews_allow_private",
            },
            connect_timeout_seconds=min(seconds, 20.0),
            read_timeout_seconds=min(seconds, 20.0),
            accept=PAGE_ACCEPT,
        )


def hackernews_settings(settings: LoomSettings) -> HackerNewsSettings:
    """``settings`` as HackerNewsSettings: the shared values, ``LOOM_HACKERNEWS_*`` from the env."""
    return settings_for(HackerNewsSettings, settings)
