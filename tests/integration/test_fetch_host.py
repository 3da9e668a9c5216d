"""Fetchers against the real Kafka and PostgreSQL: events reach their topic, cursors and
back-off survive in ``loom_fetcher_cursor``, and one run per account holds its lock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from typer.testing import CliRunner

from loom.catalog import Catalog
from loom.cli import app
from loom.runtime.cursors import PostgresCursorStore
from loom.runtime.fetch_host import run_fetchers
from loom.runtime.fetcher import Batch, FetchContext, fetcher
from loom.runtime.registry import Registry
from loom.services import LocalServices
from tests.integration.ingest_helpers import consume_all, data_of
from tests.integration.store_helpers import fresh_database
from tests.loom.runtime.feeds import LIKED, Feed, FeedSettings, liked

REGISTRY = Registry()


@fetcher(produces=[LIKED], settings=FeedSettings, name="it_feed", registry=REGISTRY)
async def fetch(account: Feed, cursor: dict[str, Any], ctx: FetchContext) -> AsyncIterator[Batch]:
    if account.down:
        raise ConnectionError("the source is down")
    for item in (i for i in account.items if i > cursor.get("last", 0)):
        yield Batch([ctx.event(LIKED, liked(item, account.name), key=str(item))], {"last": item})


async def test_fetch_into_kafka_resume_and_back_off(
    services: LocalServices, catalog: Catalog, topics: list[str]
) -> None:
    url = fresh_database(services)
    settings = FeedSettings(
        **services.settings(database_url=url).model_dump(),
        feeds=[Feed(name="it-ada", items=[101, 102, 103]), Feed(name="it-bob", down=True)],
    )
    spec = REGISTRY.fetcher("it_feed")
    reports = await run_fetchers([spec], settings, catalog)
    assert [(r.account, r.status, r.emitted) for r in reports] == [
        ("it-ada", "ok", 3),
        ("it-bob", "failed", 0),
    ]
    mine = [m for m in consume_all(settings, LIKED) if data_of(m)["account"] == "it-ada"]
    assert sorted(data_of(m)["item_id"] for m in mine) == [101, 102, 103]

    settings.feeds[0].items.append(104)
    reports = await run_fetchers([spec], settings, catalog)
    assert [(r.account, r.status, r.emitted) for r in reports] == [
        ("it-ada", "ok", 1),
        ("it-bob", "backing off", 0),
    ]
    async with PostgresCursorStore.connect(url) as cursors:
        ada, bob = await cursors.rows("it_feed")
        assert (ada.cursor, ada.emitted_total, ada.failures) == ({"last": 104}, 4, 0)
        assert ada.last_success_at is not None
        assert bob.failures == 1
        assert bob.last_error == "ConnectionError: the source is down"
        assert bob.next_attempt_at is not None
        # A run that overlaps another (a slow CronJob, `loom fetch` by hand) skips the account.
        async with cursors.claim("it_feed", "it-ada") as held:
            assert held
            reports = await run_fetchers([spec], settings, catalog, only=["it-ada"])
            assert [r.status for r in reports] == ["busy"]


def test_loom_fetch_status_and_unknown_names(
    services: LocalServices, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = fresh_database(services)
    asyncio.run(_one_failed_run(url))
    monkeypatch.setenv("LOOM_DATABASE_URL", url)
    runner = CliRunner()
    shown = runner.invoke(app, ["fetch", "--status"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "it_feed" in shown.output
    assert "ConnectionError: the source is down" in shown.output
    unknown = runner.invoke(app, ["fetch", "no_such_fetcher"])
    assert unknown.exit_code == 2
    assert "no fetcher 'no_such_fetcher'" in unknown.output


async def _one_failed_run(url: str) -> None:
    async with PostgresCursorStore.connect(url) as cursors:
        await cursors.failed("it_feed", "it-bob", "ConnectionError: the source is down",
                             datetime.now(UTC) + timedelta(minutes=1))  # fmt: skip
