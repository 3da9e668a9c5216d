"""The fetcher host: cursors, back-off, redaction, bad items, a refused batch."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import SecretStr

from loom.kafka.producer import KafkaUnavailable
from loom.runtime.fetcher import Batch, FetchContext, fetcher
from loom.runtime.registry import GraphError, Registry
from loom.testing import FetcherHarness
from tests.loom.runtime.feeds import LIKED, Feed, FeedSettings, liked


def make_fetcher(registry: Registry, batch_size: int = 2) -> Any:
    @fetcher(produces=[LIKED], settings=FeedSettings, name="feed", registry=registry)
    async def fetch(
        account: Feed, cursor: dict[str, Any], ctx: FetchContext
    ) -> AsyncIterator[Batch]:
        """Items newer than the cursor, a few per batch."""
        if account.down:
            raise ConnectionError(f"login as {account.name}:{account.password.get_secret_value()}")
        new = [i for i in account.items if i > cursor.get("last", 0)]
        for start in range(0, len(new), batch_size):
            chunk = new[start : start + batch_size]
            events = [ctx.event(LIKED, liked(i, broken=i in account.broken),
                                key=str(i)) for i in chunk]  # fmt: skip
            yield Batch(events, {"last": chunk[-1]})

    return fetch


def harness(*feeds: Feed, **kw: Any) -> FetcherHarness:
    registry = Registry()
    return FetcherHarness(make_fetcher(registry), settings=FeedSettings(feeds=list(feeds)), **kw)


async def test_first_run_emits_all_then_only_new_items() -> None:
    feed = Feed(name="ada", items=[1, 2, 3, 4, 5])
    h = harness(feed)
    (report,) = await h.run()
    assert (report.status, report.emitted, report.batches) == ("ok", 5, 3)
    assert [e.data["item_id"] for e in h.events] == [1, 2, 3, 4, 5]
    assert await h.run() == [report.__class__("feed", "ada", "ok")]  # nothing new
    feed.items.append(6)
    (report,) = await h.run()
    assert report.emitted == 1
    assert h.events[-1].data["item_id"] == 6
    assert (await h.cursors.get("feed", "ada")).emitted_total == 6


async def test_ids_follow_from_the_source_ids() -> None:
    first, again = harness(Feed(name="ada", items=[7])), harness(Feed(name="ada", items=[7]))
    await first.run()
    await again.run()
    assert first.events[0].id == again.events[0].id
    assert first.events[0].source == "/loom/fetchers/feed"
    other = harness(Feed(name="bob", items=[7]))
    await other.run()
    assert other.events[0].id != first.events[0].id  # another account's item 7


async def test_a_failing_account_backs_off_and_keeps_its_password_out() -> None:
    bad = Feed(name="ada", password=SecretStr("hunter2-secret"), down=True)
    good = Feed(name="bob", items=[1])
    h = harness(bad, good)
    reports = await h.run()
    assert [r.status for r in reports] == ["failed", "ok"]  # the other account goes on
    failed = reports[0]
    assert failed.error is not None
    assert "hunter2-secret" not in failed.error
    assert failed.error == "ConnectionError: login as ada:***"
    assert failed.next_attempt_at is not None
    assert failed.next_attempt_at > datetime.now(UTC)
    row = await h.cursors.get("feed", "ada")
    assert row.failures == 1
    assert row.last_error == failed.error
    # The next run waits for the back-off; --force tries at once and doubles the wait.
    assert [r.status for r in await h.run()] == ["backing off", "ok"]
    (forced,) = await h.run(only=("ada",), force=True)
    assert forced.status == "failed"
    assert (await h.cursors.get("feed", "ada")).failures == 2
    first_wait = failed.next_attempt_at - datetime.now(UTC)
    assert forced.next_attempt_at is not None
    assert forced.next_attempt_at - datetime.now(UTC) > first_wait
    bad.down = False
    bad.items.append(1)
    (recovered,) = await h.run(only=("ada",), force=True)
    assert recovered.status == "ok"
    assert (await h.cursors.get("feed", "ada")).failures == 0


async def test_a_batch_kafka_refuses_is_fetched_again() -> None:
    feed = Feed(name="ada", items=[1, 2, 3, 4])
    h = harness(feed)
    h.sink_error = KafkaUnavailable("broker down")
    (report,) = await h.run()
    assert report.status == "failed"
    assert report.emitted == 0
    assert (await h.cursors.get("feed", "ada")).cursor == {}  # not advanced past the loss
    (report,) = await h.run(force=True)
    assert report.emitted == 4
    assert [e.data["item_id"] for e in h.events] == [1, 2, 3, 4]


async def test_an_item_that_breaks_its_schema_is_skipped_not_fatal() -> None:
    h = harness(Feed(name="ada", items=[1, 2, 3], broken=[1, 2]))
    (report,) = await h.run()
    assert (report.status, report.emitted, report.invalid) == ("ok", 1, 2)
    assert [e.data["item_id"] for e in h.events] == [3]


async def test_one_run_per_account_at_a_time() -> None:
    h = harness(Feed(name="ada", items=[1]))
    async with h.cursors.claim("feed", "ada") as mine:
        assert mine
        (report,) = await h.run()
    assert report.status == "busy"
    assert not h.events


async def test_unknown_accounts_and_duplicate_keys_are_errors() -> None:
    h = harness(Feed(name="ada"))
    with pytest.raises(ValueError, match=r"no account \['zoe'\] \(known: ada\)"):
        await h.run(only=("zoe",))
    with pytest.raises(GraphError, match="two accounts are named"):
        await harness(Feed(name="ada"), Feed(name="ada")).run()


def test_a_fetcher_must_produce_catalog_types() -> None:
    registry = Registry()

    @fetcher(produces=["no.such.type"], settings=FeedSettings, registry=registry)
    async def fetch(account: Any, cursor: Any, ctx: Any) -> AsyncIterator[Batch]:
        yield Batch([], {})

    from loom.catalog import default_catalog

    with pytest.raises(GraphError, match="produces unknown type"):
        registry.check(default_catalog())
    assert registry.fetcher("fetch").name == "fetch"
    with pytest.raises(GraphError, match=r"no fetcher 'nope' \(known: fetch\)"):
        registry.fetcher("nope")


def test_redaction_covers_encoded_forms_of_a_secret() -> None:
    from loom.runtime.fetcher import redact

    secret = "p@ss w/rd"
    text = f"GET https://ada:p%40ss%20w%2Frd@host/ failed; form p%40ss+w%2Frd; raw {secret}"
    assert redact(text, [secret]) == "GET https://ada:***@host/ failed; form ***; raw ***"
