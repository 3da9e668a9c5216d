"""An external source end to end: a calendar on a real CalDAV server (Radicale) is
fetched into Kafka by `loom fetch`'s host, the router runs the calendar, embed and store
functions, and PostgreSQL ends up with the raw object, one enriched row per occurrence
and an embedding of each; a second fetch adds nothing."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

import psycopg
import pytest

from functions.calendar.fetcher import fetch as calendar_fetcher
from functions.calendar.handler import handle as calendar
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
DTSTAMP:20261101T090000Z
LAST-MODIFIED:20261101T090000Z
DTSTART;TZID=Europe/Berlin:20261102T090000
DTEND;TZID=Europe/Berlin:20261102T093000
RRULE:FREQ=WEEKLY;COUNT=4
SUMMARY:Stand-up with the data team
DESCRIPTION:What moved in the pipeline since last week
LOCATION:Room 3
ORGANIZER;CN=Ada:mailto:ada@example.org
ATTENDEE;CN=Grace;ROLE=REQ-PARTICIPANT;PARTSTAT=ACCEPTED:mailto:grace@example.org
END:VEVENT
END:VCALENDAR
"""


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
    radicale.new_calendar("ada", name).save_event(WEEKLY.format(uid=f"{name}@loom"))
    account = {"url": radicale.url, "username": "ada", "password": USERS["ada"],
               "calendars": [name], "name": name}  # fmt: skip
    monkeypatch.setenv("LOOM_CALENDAR_ACCOUNTS", json.dumps([account]))
    settings = store_settings(services, fresh_database(services), tmp_path)

    (report,) = await run_fetchers([calendar_fetcher.spec], settings, catalog)
    assert (report.status, report.emitted) == ("ok", 2), report  # the object and its event
    graph = Registry()
    for fn in (store, calendar, embed):
        graph.add(fn.spec)
    router = Router(graph, catalog, settings).start()
    url = settings.database_url
    expected = {
        "external_calendar_raw": 1,
        "external_calendar_events_raw": 1,
        "external_calendar_enriched": 4,  # four weekly occurrences
        "external_calendar_embedded": 4,
    }
    try:
        deadline = time.monotonic() + 120
        while any(_count(url, t, name) < n for t, n in expected.items()):
            assert time.monotonic() < deadline, {t: _count(url, t, name) for t in expected}
            await asyncio.sleep(0.5)
        (again,) = await run_fetchers([calendar_fetcher.spec], settings, catalog)
        assert (again.status, again.emitted) == ("ok", 0)
    finally:
        router.stop()
    assert sum(r.dead_lettered for r in router.runners) == 0
    assert {t: _count(url, t, name) for t in expected} == expected
    with psycopg.connect(url) as conn:
        starts = conn.execute(
            "SELECT data->>'start', data->>'timezone' FROM external_calendar_enriched"
            " WHERE data->>'account' = %s ORDER BY data->>'start'",
            (name,),
        ).fetchall()
        dims = conn.execute(
            "SELECT DISTINCT (data->'embedding'->>'dimensions')::int"
            " FROM external_calendar_embedded WHERE data->>'account' = %s",
            (name,),
        ).fetchall()
    # 09:00 in Berlin: 08:00 UTC before the clocks went back on 25 October, so 08:00 here
    assert [s[:16] for s, _ in starts] == [
        "2026-11-02T08:00",
        "2026-11-09T08:00",
        "2026-11-16T08:00",
        "2026-11-23T08:00",
    ]
    assert {z for _, z in starts} == {"Europe/Berlin"}
    assert dims == [(384,)]
