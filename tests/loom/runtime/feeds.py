"""A pretend source for the fetcher tests (unit and integration): accounts of items by
id, newest last, and the liked events made of them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, SecretStr

from loom.settings import LoomSettings

LIKED = "external.hackernews.liked"


class Feed(BaseModel):
    """One account of the pretend source: its items; ``down`` makes it fail."""

    name: str
    password: SecretStr = SecretStr("")
    items: list[int] = []
    broken: list[int] = []  # items whose data breaks the schema
    down: bool = False

    @property
    def key(self) -> str:
        return self.name


class FeedSettings(LoomSettings):
    feeds: list[Feed] = Field(default_factory=list)

    @property
    def accounts(self) -> list[Feed]:
        return self.feeds


def liked(item: int, account: str = "ada", broken: bool = False) -> dict[str, Any]:
    """The data of a liked event for ``item``; ``broken`` data breaks the schema."""
    extra = {"no_such_field": 1} if broken else {}  # the schema allows no unknown field
    return {**extra, "schema_version": "1.0", "timestamp": "2026-11-25T08:00:00Z",
            "message_id": f"hn-{item}", "account": account, "item_id": item, "title": "An item",
            "liked_at": "2026-11-25T07:58:00Z"}  # fmt: skip
