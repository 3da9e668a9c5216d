"""Scheduled fetchers: ``@fetcher(produces=[…], settings=…)`` pulls items from a source.

A fetcher is the other kind of source the graph has, beside devices: a calendar, a
mailbox, a Hacker News account. Where a function handles one event, a fetcher is an
async generator over one account::

    @fetcher(produces=["external.hackernews.liked"], settings=HackerNewsSettings)
    async def fetch(account, cursor, ctx):
        items = await read_new_items(account, since=cursor.get("last_id"))
        yield Batch([ctx.event("external.hackernews.liked", item, key=item["id"])
                     for item in items], {"last_id": items[-1]["id"]})

Each :class:`Batch` holds the events fetched since the last one and the cursor that
follows them. The host (:mod:`loom.runtime.fetch_host`) sends the events, waits until
Kafka has them, and only then saves the cursor in PostgreSQL, so a crash between the
two fetches the same items again under the same ids (:meth:`FetchContext.event`
derives an event's id from the source's own id) and the idempotent store keeps one.
Accounts come from the fetcher's settings (``accounts``: a list of pydantic models
with a ``key`` that names the account in logs and cursors and holds no secret).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import quote, quote_plus

from pydantic import BaseModel, SecretStr

from loom.runtime.event import Event
from loom.runtime.registry import REGISTRY, GraphError, Registry
from loom.settings import LoomSettings

__all__ = [
    "Account",
    "Batch",
    "FetchContext",
    "FetchFn",
    "FetcherSpec",
    "account_secrets",
    "fetcher",
    "redact",
]

_ITEM = uuid.UUID("0b6f9a52-3c1d-5d7e-8f4a-2e9c1b7d6a30")


class Account(Protocol):
    """One account a fetcher reads; ``key`` names it in cursors and logs (no secret)."""

    @property
    def key(self) -> str: ...


@dataclass(frozen=True)
class Batch:
    """Events fetched since the previous batch, and the cursor that follows them."""

    events: list[Event]
    cursor: dict[str, Any]


@dataclass
class FetchContext:
    """What a fetcher may use: its settings, a logger, the run's clock, and event ids."""

    fetcher: str
    settings: Any  # the fetcher's own settings class, read once per run
    log: Any
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    account: str = ""

    @property
    def source(self) -> str:
        return f"/loom/fetchers/{self.fetcher}"

    def event(self, type_: str, data: Any, *, key: str, time: datetime | None = None) -> Event:
        """An event of ``type_`` whose id follows from (fetcher, account, type, ``key``):
        the source's own id of the item (a UID, an item id, a href plus its ETag), so
        fetching the same item again makes the same event."""
        return Event(
            type=type_,
            data=data,
            id=str(uuid.uuid5(_ITEM, f"{self.fetcher}|{self.account}|{type_}|{key}")),
            source=self.source,
            time=time or self.now,
        )


FetchFn = Callable[[Any, dict[str, Any], FetchContext], AsyncIterator[Batch]]


@dataclass(frozen=True)
class FetcherSpec:
    """One fetcher: what it makes, its settings class, and when it runs."""

    name: str
    fetch: FetchFn
    produces: tuple[str, ...]
    settings_cls: type[LoomSettings]
    schedule: str = "*/15 * * * *"
    description: str = ""

    def accounts(self, settings: LoomSettings) -> Sequence[Account]:
        accounts: Sequence[Account] = getattr(settings, "accounts", None) or ()
        keys = [a.key for a in accounts]
        twice = sorted({k for k in keys if keys.count(k) > 1})
        if twice:
            raise GraphError(f"fetcher {self.name!r}: two accounts are named {twice}")
        return accounts


def fetcher(
    *,
    produces: Iterable[str],
    settings: type[LoomSettings],
    schedule: str = "*/15 * * * *",
    name: str | None = None,
    registry: Registry = REGISTRY,
) -> Callable[[Any], Any]:
    """Register ``fetch`` as a fetcher; ``schedule`` is its CronJob's (five cron fields)."""

    def register(fetch: Any) -> Any:
        spec = FetcherSpec(
            name=name or _default_name(fetch),
            fetch=fetch,
            produces=tuple(produces),
            settings_cls=settings,
            schedule=schedule,
            description=(fetch.__doc__ or "").strip().split("\n")[0],
        )
        registry.add_fetcher(spec)
        fetch.spec = spec
        return fetch

    return register


def _default_name(fetch: Any) -> str:
    """``calendar`` for ``functions.calendar.fetcher.fetch``; else the function's name."""
    parts = str(fetch.__module__).split(".")
    return parts[-2] if len(parts) > 1 and parts[-1] == "fetcher" else str(fetch.__name__)


def account_secrets(account: Any) -> list[str]:
    """Every secret an account holds (its ``SecretStr`` fields, nested ones too)."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, SecretStr):
            if secret := value.get_secret_value():
                found.append(secret)
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(getattr(value, name))
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)

    walk(account)
    return found


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret replaced by ``***`` (an error may quote a URL or a
    server's echo of the login), as written and as URL- or form-encoded."""
    forms = {form for secret in secrets for form in
             (secret, quote(secret, safe=""), quote_plus(secret)) if form}  # fmt: skip
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, "***")
    return text
