"""What a person sees of the hackernews fetcher: each favourite and upvote once, new ones
on later runs, upvotes after a login, and failures that back off and say why (never the
password)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from structlog.testing import capture_logs

from functions.hackernews.fetcher import LIKED, fetch
from functions.hackernews.settings import HackerNewsSettings
from loom.catalog import default_catalog
from loom.errors import ConfigError
from loom.runtime.cursors import MemoryCursorStore
from loom.runtime.fetcher import account_secrets
from loom.settings import load_settings
from loom.testing import FetcherHarness
from tests.functions.hackernews.conftest import FakeHackerNews

ADA = {"username": "ada_hn"}
GRACE = {"username": "grace", "password": "correct horse"}


def ids_of(harness: FetcherHarness) -> list[int]:
    return [e.data["item_id"] for e in harness.events]


async def test_the_first_run_emits_each_favourite_once(hn: FakeHackerNews) -> None:
    hn.page_size = 3  # seven favourites on three pages
    h = FetcherHarness(fetch, settings=hn.settings(ADA))
    (report,) = await h.run()
    assert (report.account, report.status, report.emitted) == ("ada_hn", "ok", 7)
    assert ids_of(h) == hn.favorites["ada_hn"]  # newest first, as the site lists them
    assert len({e.id for e in h.events}) == 7
    show, ask = (next(e.data for e in h.events if e.data["item_id"] == 42_000_000 + n)
                 for n in (7, 5))  # fmt: skip
    assert show["title"] == "Show HN: Project number 7"
    assert show["url"] == f"{hn.url}/articles/7"
    assert show["account"] == "ada_hn"
    assert show["message_id"] == "hn-favorite-42000007"
    assert ask["title"] == "Ask HN: Question number 5?"
    assert "url" not in ask  # a text post links nowhere
    assert all(e.type == LIKED and e.source == "/loom/fetchers/hackernews" for e in h.events)
    pages = [a.query.get("p") for a in hn.requests("/favorites")]
    assert pages == [None, ["2"], ["3"]]
    assert {a.user_agent for a in hn.asked} == {"loom-hackernews/1.0 (personal archive)"}
    assert all(a.cookie is None for a in hn.asked)


async def test_a_second_run_emits_nothing_and_reads_one_page(hn: FakeHackerNews) -> None:
    hn.page_size = 3
    h = FetcherHarness(fetch, settings=hn.settings(ADA))
    await h.run()
    hn.asked.clear()
    (report,) = await h.run()
    assert (report.status, report.emitted) == ("ok", 0)
    assert len(h.events) == 7
    assert len(hn.requests("/favorites")) == 1
    assert hn.requests("/v0/item/42000007.json") == []  # nothing new: no look-ups


async def test_a_new_favourite_at_the_top_is_emitted_alone(hn: FakeHackerNews) -> None:
    hn.page_size = 3
    h = FetcherHarness(fetch, settings=hn.settings(ADA))
    await h.run()
    hn.like("ada_hn", 42_000_010)
    (report,) = await h.run()
    assert report.emitted == 1
    new = h.events[-1]
    assert (new.data["item_id"], new.data["title"]) == (42_000_010, "Show HN: Project number 10")
    assert len(h.events) == 8


async def test_unliking_and_reliking_at_the_top_makes_nothing_old_new(hn: FakeHackerNews) -> None:
    h = FetcherHarness(fetch, settings=hn.settings(ADA))
    await h.run()
    hn.favorites["ada_hn"].remove(42_000_007)  # un-liked: the top known id is gone
    hn.like("ada_hn", 42_000_009)
    hn.like("ada_hn", 42_000_003)  # liked again: a known id at the very top
    (report,) = await h.run()
    assert report.emitted == 1
    assert ids_of(h)[-1] == 42_000_009


async def test_the_first_run_reads_at_most_max_pages(hn: FakeHackerNews) -> None:
    hn.page_size = 3
    h = FetcherHarness(fetch, settings=hn.settings(ADA, hackernews_max_pages=2))
    (report,) = await h.run()
    assert report.emitted == 6
    assert len(hn.requests("/favorites")) == 2
    hn.like("ada_hn", 42_000_008)
    await h.run()
    assert ids_of(h) == [42_000_000 + n for n in (7, 6, 5, 4, 3, 2, 8)]


async def test_reading_again_from_scratch_makes_the_same_events(hn: FakeHackerNews) -> None:
    """A run that dies before its cursor is saved reads the items again: same ids, so the
    store keeps one of each."""
    first = FetcherHarness(fetch, settings=hn.settings(ADA))
    again = FetcherHarness(fetch, settings=hn.settings(ADA), cursors=MemoryCursorStore())
    await first.run()
    await again.run()
    assert [e.id for e in again.events] == [e.id for e in first.events]


async def test_upvoted_works_after_logging_in(hn: FakeHackerNews) -> None:
    h = FetcherHarness(fetch, settings=hn.settings(GRACE))
    (report,) = await h.run()
    assert (report.status, report.emitted) == ("ok", 5)  # 2 favourites, 3 upvoted
    (login,) = hn.requests("/login")
    assert login.method == "POST"
    assert (login.form["acct"], login.form["pw"]) == (["grace"], ["correct horse"])
    (upvoted,) = hn.requests("/upvoted")
    assert upvoted.cookie is not None
    assert upvoted.cookie.startswith("user=grace&")
    assert all(a.cookie is None for a in hn.requests("/favorites"))
    kinds = [e.data["message_id"].rsplit("-", 1)[0] for e in h.events]
    assert kinds == ["hn-favorite"] * 2 + ["hn-upvoted"] * 3
    # favourited and upvoted: two likes, two events
    both = [e.id for e in h.events if e.data["item_id"] == 42_000_009]
    assert len(set(both)) == 2
    await h.run()
    assert len(h.events) == 5


async def test_a_cookie_instead_of_a_password(hn: FakeHackerNews) -> None:
    cookie = hn.session("grace")
    h = FetcherHarness(fetch, settings=hn.settings({"username": "grace", "cookie": cookie,
                                                    "kinds": ["upvoted"]}))  # fmt: skip
    (report,) = await h.run()
    assert (report.status, report.emitted) == ("ok", 3)
    assert hn.requests("/login") == []
    assert hn.requests("/favorites") == []


async def test_without_the_login_upvoted_is_not_shown(hn: FakeHackerNews) -> None:
    h = FetcherHarness(fetch, settings=hn.settings({"username": "grace",
                                                    "cookie": "grace&0ld5e55i0n",
                                                    "kinds": ["upvoted"]}))  # fmt: skip
    (report,) = await h.run()
    assert report.status == "failed"
    assert "owner only" in (report.error or "")
    assert "0ld5e55i0n" not in (report.error or "")
    assert h.events == []


async def test_a_wrong_password_fails_without_saying_it(hn: FakeHackerNews) -> None:
    password = "tr0ub4dor&3"
    h = FetcherHarness(fetch, settings=hn.settings({"username": "grace",
                                                    "password": password}))  # fmt: skip
    with capture_logs() as logs:
        (report,) = await h.run()
    assert report.status == "failed"
    assert "cannot log in to Hacker News as grace: bad login" in (report.error or "")
    assert report.emitted == 2  # the public favourites came first
    (row,) = await h.cursors.rows()
    assert row.failures == 1
    assert row.next_attempt_at is not None
    assert any(log["event"] == "fetch.failed" for log in logs)
    said = [report.error, row.last_error, repr(row.cursor), repr(logs)]
    assert not any(password in text for text in said)
    assert hn.requests("/upvoted") == []


async def test_a_server_error_backs_off_and_keeps_the_cursor(hn: FakeHackerNews) -> None:
    h = FetcherHarness(fetch, settings=hn.settings(ADA))
    await h.run()
    (before,) = await h.cursors.rows()
    hn.fail = 500
    hn.like("ada_hn", 42_000_010)
    started = datetime.now(UTC)
    (report,) = await h.run()
    assert report.status == "failed"
    assert "500" in (report.error or "")
    assert report.next_attempt_at is not None
    assert report.next_attempt_at - started == pytest.approx(timedelta(seconds=60),
                                                             abs=timedelta(seconds=5))  # fmt: skip
    (after,) = await h.cursors.rows()
    assert after.cursor == before.cursor
    assert after.failures == 1
    hn.asked.clear()
    (waiting,) = await h.run()
    assert waiting.status == "backing off"
    assert hn.asked == []  # nothing asked while backing off
    hn.fail = None
    (retry,) = await h.run(force=True)
    assert (retry.status, retry.emitted) == ("ok", 1)
    assert ids_of(h)[-1] == 42_000_010


async def test_a_failure_on_a_later_page_loses_nothing(hn: FakeHackerNews) -> None:
    hn.page_size = 3
    hn.fail_pages = {2}
    h = FetcherHarness(fetch, settings=hn.settings(ADA))
    (report,) = await h.run()
    assert (report.status, report.emitted) == ("failed", 3)  # the first page was sent
    (row,) = await h.cursors.rows()
    assert row.cursor == {}  # the list's top is not saved before the list is read through
    hn.fail_pages = set()
    await h.run(force=True)
    assert sorted(set(ids_of(h))) == sorted(hn.favorites["ada_hn"])
    assert len({e.id for e in h.events}) == 7  # the first page again, under the same ids


async def test_being_asked_to_slow_down_is_a_failure(hn: FakeHackerNews) -> None:
    hn.fail = 200  # the site's "Sorry, we're not able to serve your requests this quickly."
    h = FetcherHarness(fetch, settings=hn.settings(ADA))
    (report,) = await h.run()
    assert report.status == "failed"
    assert "asks to slow down" in (report.error or "")
    (row,) = await h.cursors.rows()
    assert (row.cursor, row.failures) == ({}, 1)


async def test_a_user_that_does_not_exist_fails_clearly(hn: FakeHackerNews) -> None:
    h = FetcherHarness(fetch, settings=hn.settings({"username": "nobody_here"}))
    (report,) = await h.run()
    assert report.status == "failed"
    assert "no such user" in (report.error or "")


async def test_the_events_keep_to_their_schema(hn: FakeHackerNews) -> None:
    hn.items[42_000_004]["title"] = "x" * 600  # longer than the schema allows: cut
    hn.items[42_000_006]["url"] = "https://例え.jp/パス?q=1"
    h = FetcherHarness(fetch, settings=hn.settings(ADA))
    (report,) = await h.run()
    assert (report.emitted, report.invalid) == (7, 0)
    catalog = default_catalog()
    assert all(not catalog.violations(LIKED, e.data) for e in h.events)
    odd = next(e.data for e in h.events if e.data["item_id"] == 42_000_006)
    assert odd["url"] == "https://xn--r8jz45g.jp/%E3%83%91%E3%82%B9?q=1"


# ── accounts ─────────────────────────────────────────────────────────────────


def test_accounts_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOM_HACKERNEWS_ACCOUNTS", '[{"username": "ada_hn"}, {"username": '
                       '"grace", "password": "pw1"}, {"username": "bob", "cookie": '
                       '"user=bob&abc; Path=/", "kinds": ["upvoted"]}]')  # fmt: skip
    config = load_settings(HackerNewsSettings)
    assert [(a.key, a.kinds) for a in config.accounts] == [
        ("ada_hn", ("favorites",)),
        ("grace", ("favorites", "upvoted")),
        ("bob", ("upvoted",)),
    ]
    assert [account_secrets(a) for a in config.accounts] == [[], ["pw1"], ["bob&abc"]]
    assert "pw1" not in repr(config)


@pytest.mark.parametrize(
    ("accounts", "says"),
    [
        ('[{"username": "ada_hn", "kinds": ["upvoted"]}]', "owner only"),
        ('[{"user": "grace", "password": "hunter2"}]', "[0].username: Field required"),
        ('[{"username": "grace", "pasword": "hunter2"}]', "[0].pasword: Extra inputs"),
        ('[{"username": "grace", "password": "hunter2", "kinds": ["liked"]}]', "[0].kinds[0]"),
    ],
)
def test_a_bad_account_is_a_clear_error_without_its_password(
    monkeypatch: pytest.MonkeyPatch, accounts: str, says: str
) -> None:
    monkeypatch.setenv("LOOM_HACKERNEWS_ACCOUNTS", accounts)
    with pytest.raises(ConfigError, match="LOOM_HACKERNEWS_ACCOUNTS") as info:
        load_settings(HackerNewsSettings)
    assert says in str(info.value)
    assert "hunter2" not in str(info.value)
    assert info.value.__cause__ is None  # the validation error, which quotes it, is not chained


def test_two_accounts_with_one_name_are_refused(hn: FakeHackerNews) -> None:
    from loom.runtime.registry import GraphError

    with pytest.raises(GraphError, match="two accounts"):
        fetch.spec.accounts(hn.settings(ADA, ADA))


def test_discover_finds_the_fetcher_and_the_function() -> None:
    from loom.runtime.registry import REGISTRY, discover

    discover()
    assert REGISTRY.fetcher("hackernews").produces == (LIKED,)
    assert REGISTRY["hackernews"].consumes == (LIKED,)
    REGISTRY.check(default_catalog())
