"""An external source end to end: a calendar on a real CalDAV server (Radicale) is
fetched into Kafka by `loom fetch`'s host, the router runs the calendar, embed and store
functions, and PostgreSQL ends up with the raw objects, one enriched row per occurrence
and an embedding of each; a series begun three years ago has its current and coming
occurrences kept; a second fetch adds nothing, and a refresh of the recurring objects
adds their raw rows again but no occurrence twice."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest

from functions.calendar.fetcher import fetch as calendar_fetcher
from functions.calendar.fetcher import period_start
from functions.calendar.handler import handle as calendar_fn
from functions.embed.handler import handle as embed
from functions.store.handler import handle as store
from loom.catalog import Catalog
from loom.runtime.fetch_host import run_fetchers
from loom.runtime.registry import Registry
from loom.runtime.router import Router
from loom.services import LocalServices
from tests.functions.calendar.conftest import USERS, Radicale, radicale  # noqa: F401
from tests.integration.store_helpers import fresh_database, store_settings

WEEKLY = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//loom tests//EN
BEGIN:VEVENT
UID:{uid}
DTSTAMP:{written}
LAST-MODIFIED:{written}
DTSTART;TZID=Europe/Berlin:{first}
DTEND;TZID=Europe/Berlin:{end}
RRULE:FREQ=WEEKLY;COUNT=4
SUMMARY:Stand-up with the data team
DESCRIPTION:What moved in the pipeline since last week
LOCATION:Room 3
ORGANIZER;CN=Ada:mailto:ada@example.org
ATTENDEE;CN=Grace;ROLE=REQ-PARTICIPANT;PARTSTAT=ACCEPTED:mailto:grace@example.org
END:VEVENT
END:VCALENDAR
"""


OLD = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//loom tests//EN
BEGIN:VEVENT
UID:{uid}
DTSTAMP:{written}
LAST-MODIFIED:{written}
DTSTART;TZID=Europe/Berlin:{first}
DURATION:PT30M
RRULE:FREQ=WEEKLY
SUMMARY:1:1 with Grace
END:VEVENT
END:VCALENDAR
"""
BERLIN = ZoneInfo("Europe/Berlin")


def _monday(moment: datetime, hour: int) -> datetime:
    """Monday of ``moment``'s week at ``hour`` in Berlin."""
    day = moment.astimezone(BERLIN).date()
    return datetime.combine(day - timedelta(days=day.weekday()), datetime.min.time(),
                            BERLIN).replace(hour=hour)  # fmt: skip


def _local(moment: datetime) -> str:
    return moment.strftime("%Y%m%dT%H%M%S")


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _mondays(first: datetime, since: datetime, until: datetime) -> set[str]:
    """The starts (UTC, as stored) of the weekly series from ``first`` in [since, until)."""
    found, n = set(), 0
    while (at := (first + timedelta(weeks=n)).astimezone(UTC)) < until:
        if at >= since:
            found.add(at.isoformat().replace("+00:00", "Z"))
        n += 1
    return found


def _count(url: str, table: str, account: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            f"SELECT count(*) FROM {table} WHERE data->>'account' = %s", (account,)
        ).fetchone()
        return int((row or (0,))[0])


async def test_a_calendar_reaches_the_database_enriched_and_embedded(
    services: LocalServices,
    catalog: Catalog,
    topics: list[str],
    radicale: Radicale,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    calendar = radicale.new_calendar("ada", name)
    now = datetime.now(UTC)
    monday = _monday(now, 10)  # this week's, 10:00 in Berlin
    weekly = monday + timedelta(weeks=1) - timedelta(hours=1)
    calendar.save_event(WEEKLY.format(
        uid=f"{name}@loom", written=_utc(now - timedelta(days=1)), first=_local(weekly),
        end=_local(weekly + timedelta(minutes=30))))  # fmt: skip
    begun = now - timedelta(days=3 * 365)
    first = _monday(begun, 10)
    calendar.save_event(OLD.format(uid=f"{name}-old@loom", first=_local(first),
                                   written=_utc(begun)))  # fmt: skip
    account = {"url": radicale.url, "username": "ada", "password": USERS["ada"],
               "calendars": [name], "name": name}  # fmt: skip
    monkeypatch.setenv("LOOM_CALENDAR_ACCOUNTS", json.dumps([account]))
    settings = store_settings(services, fresh_database(services), tmp_path)

    (report,) = await run_fetchers([calendar_fetcher.spec], settings, catalog)
    assert (report.status, report.emitted) == ("ok", 4), report  # the objects and their events
    sent_as_of = period_start(now, 30)  # the old series: as of this period's start
    old = _mondays(first, sent_as_of - timedelta(days=30), sent_as_of + timedelta(days=180))
    graph = Registry()
    for fn in (store, calendar_fn, embed):
        graph.add(fn.spec)
    router = Router(graph, catalog, settings).start()
    url = settings.database_url
    expected = {
        "external_calendar_raw": 2,
        "external_calendar_events_raw": 2,
        "external_calendar_enriched": 4 + len(old),  # four weekly occurrences, and the old's
        "external_calendar_embedded": 4 + len(old),
    }
    try:
        await _until_stored(url, name, expected)
        (again,) = await run_fetchers([calendar_fetcher.spec], settings, catalog)
        assert (again.status, again.emitted) == ("ok", 0)
        with psycopg.connect(url) as conn:
            kept = _starts(conn, f"{name}-old@loom")
        assert kept == old

        # a day-long refresh period: both series are sent again, as of today
        monkeypatch.setenv("LOOM_CALENDAR_REFRESH_DAYS", "1")
        today = period_start(datetime.now(UTC), 1)
        (refreshed,) = await run_fetchers([calendar_fetcher.spec], settings.model_copy(), catalog)
        assert (refreshed.status, refreshed.emitted) == ("ok", 4)
        old |= _mondays(first, today - timedelta(days=30), today + timedelta(days=180))
        expected = {
            "external_calendar_raw": 4,
            "external_calendar_events_raw": 4,
            "external_calendar_enriched": 4 + len(old),  # no occurrence twice
            "external_calendar_embedded": 4 + len(old),
        }
        await _until_stored(url, name, expected)
    finally:
        router.stop()
    assert sum(r.dead_lettered for r in router.runners) == 0
    assert {t: _count(url, t, name) for t in expected} == expected
    with psycopg.connect(url) as conn:
        starts = conn.execute(
            "SELECT data->>'start', data->>'timezone' FROM external_calendar_enriched"
            " WHERE data->>'account' = %s AND data->>'event_uid' = %s ORDER BY data->>'start'",
            (name, f"{name}@loom"),
        ).fetchall()
        assert _starts(conn, f"{name}-old@loom") == old
        assert any(now - timedelta(days=7) < datetime.fromisoformat(s) <= now for s in old)
        assert max(datetime.fromisoformat(s) for s in old) > now + timedelta(days=150)
        dims = conn.execute(
            "SELECT DISTINCT (data->'embedding'->>'dimensions')::int"
            " FROM external_calendar_embedded WHERE data->>'account' = %s",
            (name,),
        ).fetchall()
    # 09:00 in Berlin each week, in UTC with the offset of its day
    assert [s for s, _ in starts] == sorted(_mondays(weekly, weekly, weekly + timedelta(weeks=4)))
    assert len(starts) == 4
    assert {z for _, z in starts} == {"Europe/Berlin"}
    assert dims == [(384,)]


async def _until_stored(url: str, account: str, expected: dict[str, int]) -> None:
    deadline = time.monotonic() + 120
    while any(_count(url, t, account) < n for t, n in expected.items()):
        assert time.monotonic() < deadline, {t: _count(url, t, account) for t in expected}
        await asyncio.sleep(0.5)
    await asyncio.sleep(1)  # and nothing more comes


def _starts(conn: psycopg.Connection[Any], uid: str) -> set[str]:
    rows = conn.execute(
        "SELECT data->>'start' FROM external_calendar_enriched WHERE data->>'event_uid' = %s",
        (uid,),
    ).fetchall()
    starts = [row[0] for row in rows]
    assert len(starts) == len(set(starts)), "an occurrence was stored twice"
    return set(starts)
