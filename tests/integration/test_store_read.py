"""Reading the store back against a real PostgreSQL: pages, activity, exports, deletion."""

from __future__ import annotations

import asyncio
import io
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from functions.ingest import IngestSettings
from loom.catalog import Catalog
from loom.cli import app
from loom.runtime.event import Event
from loom.services import LocalServices
from loom.store import open_store
from loom.store.query import StoreReader
from tests.integration.ingest_helpers import assert_problem
from tests.integration.store_helpers import gps, heartrate, store_settings

GPS = "device.sensor.gps.raw"
HR = "device.health.heartrate.raw"
Write = Callable[[list[Event]], None]


@pytest.fixture
def url(ingest_settings: IngestSettings, admin: str) -> str:
    """The session database the ingest app reads (migrated by the ``admin`` fixture)."""
    return ingest_settings.database_url


@pytest.fixture
def write(services: LocalServices, url: str, tmp_path: Path) -> Write:
    """Store events in the session database through the real writer."""

    async def store(events: list[Event]) -> None:
        settings = store_settings(services, url, tmp_path)
        async with open_store(settings, run_migrations=False) as s:
            await asyncio.gather(*(s.writer.write(e) for e in events))

    return lambda events: asyncio.run(store(events))


@pytest.fixture
def base() -> datetime:
    """An hour ago, to the second: times of the events a test writes."""
    return datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


def new_device() -> str:
    return f"rd-{uuid.uuid4().hex[:10]}"


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def z(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def key(event: Event) -> tuple[datetime, str, str]:
    return (event.time, event.source, event.id)


def all_pages(client: TestClient, token: str, path: str, **params: Any) -> list[list[Any]]:
    pages, cursor = [], None
    while True:
        answer = client.get(path, params={**params, "cursor": cursor}, headers=auth(token))
        assert answer.status_code == 200, answer.text
        body = answer.json()
        pages.append(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 50, "the cursor does not advance"


# ── pages ─────────────────────────────────────────────────────────────────


def test_pages_return_every_row_once_in_time_source_id_order(
    client: TestClient, admin: str, write: Write, base: datetime
) -> None:
    mine, other = new_device(), new_device()
    # Three events share each time: source, then id break the tie ("gps-10" < "gps-9").
    events = [gps(n, device=mine, at=base + timedelta(seconds=n // 3, microseconds=7))
              for n in range(25)]  # fmt: skip
    write([*events, *(gps(n, device=other, at=base) for n in range(5))])
    expected = [e.id for e in sorted(events, key=key)]

    pages = all_pages(client, admin, f"/events/{GPS}", device_id=mine, limit=7)
    assert [len(p) for p in pages] == [7, 7, 7, 4]
    assert [item["id"] for page in pages for item in page] == expected
    exact = all_pages(client, admin, f"/events/{GPS}", device_id=mine, limit=5)
    assert [len(p) for p in exact] == [5] * 5  # no empty page after the last full one

    first = pages[0][0]
    assert set(first) == {"id", "source", "type", "device_id", "time", "received_at",
                          "stored_at", "schema_version", "data"}  # fmt: skip
    source = next(e for e in events if e.id == first["id"])
    assert first["type"] == GPS
    assert first["device_id"] == mine
    assert first["source"] == f"/devices/{mine}"
    assert datetime.fromisoformat(first["time"]) == source.time  # to the microsecond
    assert first["data"]["latitude"] == source.data["latitude"]
    assert first["schema_version"] == "1.0"


def test_from_and_to_are_a_half_open_range(
    client: TestClient, admin: str, write: Write, base: datetime
) -> None:
    device = new_device()
    write([heartrate(n, device=device, at=base + timedelta(minutes=n)) for n in range(10)])
    path = f"/events/{HR}"
    within = client.get(path, headers=auth(admin), params={
        "device_id": device, "from": z(base + timedelta(minutes=2)),
        "to": z(base + timedelta(minutes=5))})  # fmt: skip
    assert [i["id"] for i in within.json()["items"]] == ["hr-2", "hr-3", "hr-4"]
    # A time without an offset is UTC; either end may be left open.
    naive = (base + timedelta(minutes=8)).replace(tzinfo=None).isoformat()
    since = client.get(path, headers=auth(admin), params={"device_id": device, "from": naive})
    assert [i["id"] for i in since.json()["items"]] == ["hr-8", "hr-9"]
    until = client.get(path, headers=auth(admin), params={
        "device_id": device, "to": z(base + timedelta(minutes=1))})  # fmt: skip
    assert [i["id"] for i in until.json()["items"]] == ["hr-0"]


def test_a_device_token_reads_its_own_device_only(
    client: TestClient, admin: str, device: dict[str, Any], write: Write, base: datetime
) -> None:
    mine, other = device["device_id"], new_device()
    write([gps(n, device=mine, at=base) for n in range(3)] + [gps(9, device=other, at=base)])
    own = client.get(f"/events/{GPS}", headers=auth(device["token"]))
    assert own.status_code == 200, own.text
    assert sorted(i["id"] for i in own.json()["items"]) == ["gps-0", "gps-1", "gps-2"]
    explicit = client.get(f"/events/{GPS}", params={"device_id": mine},
                          headers=auth(device["token"]))  # fmt: skip
    assert len(explicit.json()["items"]) == 3
    refused = client.get(f"/events/{GPS}", params={"device_id": other},
                         headers=auth(device["token"]))  # fmt: skip
    assert_problem(refused, 403, f"reads only device {mine!r}'s events")
    as_admin = client.get(f"/events/{GPS}", params={"device_id": other}, headers=auth(admin))
    assert [i["id"] for i in as_admin.json()["items"]] == ["gps-9"]
    assert_problem(client.get(f"/events/{GPS}"), 401)


def test_bad_parameters_are_problems_that_say_what_is_wrong(
    client: TestClient, admin: str, catalog: Catalog, write: Write, base: datetime
) -> None:
    device = new_device()
    write([gps(n, device=device, at=base) for n in range(2)])
    headers = auth(admin)
    typo = client.get("/events/device.sensor.gps.rawr", headers=headers)
    assert_problem(typo, 404, "not an event type in the catalog", f"did you mean {GPS!r}")
    unstored = next(t.type for t in catalog if not t.stored)
    assert_problem(client.get(f"/events/{unstored}", headers=headers), 404,
                   "is not stored: the catalog gives it no table")  # fmt: skip
    at = "2026-11-25T10:00:00Z"
    empty = client.get(f"/events/{GPS}", headers=headers, params={"from": at, "to": at})
    assert_problem(empty, 400, "must be before to", "[from, to)")
    assert_problem(client.get(f"/events/{GPS}", headers=headers, params={"cursor": "nonsense"}),
                   400, "not one this API gave out")  # fmt: skip
    page = client.get(f"/events/{GPS}", headers=headers, params={"device_id": device, "limit": 1})
    wrong = client.get(f"/events/{HR}", headers=headers,
                       params={"cursor": page.json()["next_cursor"]})  # fmt: skip
    assert_problem(wrong, 400, f"continues a query of {GPS!r}, not of {HR!r}")
    assert_problem(client.get(f"/events/{GPS}", headers=headers, params={"limit": 1001}), 422)
    assert_problem(client.get(f"/events/{GPS}", headers=headers, params={"limit": 0}), 422)
    assert_problem(client.get(f"/events/{GPS}", headers=headers, params={"from": "soon"}), 422)
    assert_problem(client.get(f"/events/{GPS}", headers=headers,
                              params={"device_id": "a\x00b"}), 400, "NUL")  # fmt: skip
    assert_problem(client.get("/admin/export", headers=headers, params={"type": unstored}), 404,
                   "is not stored")  # fmt: skip
    assert_problem(client.get("/admin/export", headers=headers,
                              params={"type": GPS, "format": "csv"}), 422)  # fmt: skip


# ── activity ──────────────────────────────────────────────────────────────


def test_activity_reports_stored_events_per_device_and_type(
    client: TestClient, admin: str, device: dict[str, Any], url: str, write: Write, base: datetime
) -> None:
    registered, unknown = device["device_id"], new_device()
    write([gps(n, device=registered, at=base + timedelta(seconds=n)) for n in range(3)]
          + [heartrate(n, device=registered, at=base + timedelta(minutes=n)) for n in range(2)]
          + [heartrate(0, device=unknown, at=base)])  # fmt: skip

    answer = client.get("/devices/activity", headers=auth(admin))
    assert answer.status_code == 200, answer.text
    report = {a["device_id"]: a for a in answer.json()}
    mine = report[registered]
    assert mine["registered"] is True
    assert mine["name"] == "test device"
    assert mine["stored_events"] == 5
    assert datetime.fromisoformat(mine["last_event_at"]) == base + timedelta(minutes=1)
    assert [(t["type"], t["count"]) for t in mine["types"]] == [(HR, 2), (GPS, 3)]  # latest first
    assert datetime.fromisoformat(mine["types"][1]["last_event_at"]) == base + timedelta(seconds=2)
    assert {"last_seen_at", "events_total", "active"} <= set(mine)  # what ingest took, as before
    stranger = report[unknown]
    assert (stranger["registered"], stranger["name"], stranger["stored_events"]) == (False, None, 1)
    refused = client.get("/devices/activity", headers=auth(device["token"]))
    assert_problem(refused, 403, "admin token")

    async def one_device() -> list[Any]:
        async with await psycopg.AsyncConnection.connect(url) as conn:
            return await StoreReader.default().activity(conn, registered)

    found = asyncio.run(one_device())
    by_type = [(a.device_id, a.type, a.count) for a in found]  # sorted by device, then type
    assert by_type == [(registered, HR, 2), (registered, GPS, 3)]


# ── export ────────────────────────────────────────────────────────────────


def cli(*args: str, url: str, stdin: str | None = None) -> Any:
    return CliRunner().invoke(app, list(args), env={"LOOM_DATABASE_URL": url}, input=stdin)


def assert_same_events(lines: list[dict[str, Any]], events: list[Event]) -> None:
    assert [line["id"] for line in lines] == [e.id for e in events]
    for line, event in zip(lines, events, strict=True):
        assert line["specversion"] == "1.0"
        assert line["type"] == event.type
        assert line["source"] == event.source
        assert line["partitionkey"] == event.device_id
        assert datetime.fromisoformat(line["time"]) == event.time
        assert line["data"] == event.data


def test_export_as_jsonl_and_parquet_from_the_command_line(
    url: str, write: Write, base: datetime, tmp_path: Path
) -> None:
    device = new_device()
    events = [gps(n, device=device, at=base + timedelta(seconds=n, microseconds=n))
              for n in range(12)]  # fmt: skip
    write([*events, gps(99, device=new_device(), at=base)])

    done = cli("export", "--type", GPS, "--device", device, "--format", "jsonl", "-o", "-", url=url)
    assert done.exit_code == 0, done.output
    assert_same_events([orjson.loads(line) for line in done.stdout.splitlines()], events)
    assert f"exported 12 {GPS} event(s) to stdout" in done.stderr

    window = cli("export", "--type", GPS, "--device", device, "--from", z(events[3].time),
                 "--to", z(events[5].time), url=url)  # fmt: skip
    assert [orjson.loads(line)["id"] for line in window.stdout.splitlines()] == ["gps-3", "gps-4"]

    target = tmp_path / "gps.parquet"
    done = cli("export", "-t", GPS, "--device", device, "-f", "parquet", "-o", str(target), url=url)
    assert done.exit_code == 0, done.output
    table = pq.read_table(target)
    assert table.column_names == ["id", "source", "type", "device_id", "time", "received_at",
                                  "schema_version", "data"]  # fmt: skip
    rows = table.to_pylist()
    assert [r["id"] for r in rows] == [e.id for e in events]
    assert [r["time"] for r in rows] == [e.time for e in events]
    assert [orjson.loads(r["data"]) for r in rows] == [e.data for e in events]
    assert {r["device_id"] for r in rows} == {device}
    assert list(tmp_path.glob("*.partial")) == []


def test_export_reads_in_chunks_after_counting(url: str, write: Write, base: datetime) -> None:
    device = new_device()
    write([heartrate(n, device=device, at=base + timedelta(seconds=n)) for n in range(10)])
    reader = StoreReader.default()

    async def export() -> tuple[int, list[list[str]]]:
        selection = reader.select(HR, device_id=device)
        async with (
            await psycopg.AsyncConnection.connect(url) as conn,
            reader.export(conn, selection, chunk_rows=4) as e,
        ):
            return e.total, [[r["id"] for r in rows] async for rows in e.chunks()]

    total, chunks = asyncio.run(export())
    assert total == 10
    assert chunks == [[f"hr-{n}" for n in range(s, min(s + 4, 10))] for s in (0, 4, 8)]


def test_export_over_http_streams_a_file(
    client: TestClient, admin: str, device: dict[str, Any], write: Write, base: datetime
) -> None:
    mine = device["device_id"]
    events = [heartrate(n, device=mine, at=base + timedelta(seconds=n)) for n in range(7)]
    write([*events, heartrate(1, device=new_device(), at=base)])
    params = {"type": HR, "device_id": mine}

    lines = client.get("/admin/export", params=params, headers=auth(admin))
    assert lines.status_code == 200, lines.text
    assert lines.headers["content-type"] == "application/x-ndjson"
    assert lines.headers["content-disposition"] == f'attachment; filename="{HR}-{mine}.jsonl"'
    assert lines.headers["x-total-count"] == "7"
    assert_same_events([orjson.loads(line) for line in lines.text.splitlines()], events)

    parquet = client.get("/admin/export", params={**params, "format": "parquet"},
                         headers=auth(admin))  # fmt: skip
    assert parquet.status_code == 200, parquet.text
    assert parquet.headers["content-type"] == "application/vnd.apache.parquet"
    rows = pq.read_table(io.BytesIO(parquet.content)).to_pylist()
    assert [(r["id"], r["time"], orjson.loads(r["data"])) for r in rows] == [
        (e.id, e.time, e.data) for e in events
    ]

    nothing = client.get("/admin/export", params={"type": HR, "device_id": new_device()},
                         headers=auth(admin))  # fmt: skip
    assert (nothing.status_code, nothing.content, nothing.headers["x-total-count"]) == (
        200,
        b"",
        "0",
    )
    assert_problem(client.get("/admin/export", params=params, headers=auth(device["token"])),
                   403, "admin token")  # fmt: skip


# ── delete ────────────────────────────────────────────────────────────────


def stored_ids(url: str, device: str) -> dict[str, list[str]]:
    with psycopg.connect(url) as conn:
        tables = conn.execute("SELECT event_type, table_name FROM loom_event_tables").fetchall()
        found = {}
        for event_type, table in tables:
            ids = conn.execute(
                psycopg.sql.SQL("SELECT id FROM {} WHERE device_id = %s ORDER BY id").format(
                    psycopg.sql.Identifier(table)), (device,)).fetchall()  # fmt: skip
            if ids:
                found[event_type] = [i for (i,) in ids]
    return found


def test_delete_from_the_command_line_asks_then_removes_one_devices_rows(
    url: str, write: Write, base: datetime, catalog: Catalog
) -> None:
    gone, kept = new_device(), new_device()
    write([gps(n, device=gone, at=base) for n in range(3)]
          + [heartrate(n, device=gone, at=base) for n in range(2)]
          + [gps(n, device=kept, at=base) for n in range(2)])  # fmt: skip

    declined = cli("delete", "--device", gone, url=url, stdin="n\n")
    assert declined.exit_code == 1
    assert f"Delete 5 stored event(s) of device {gone!r} (2 type(s))?" in declined.output
    assert len(stored_ids(url, gone)) == 2

    done = cli("delete", "--device", gone, url=url, stdin="y\n")
    assert done.exit_code == 0, done.output
    for event_type in (GPS, HR):
        assert catalog[event_type].table in done.stdout
    assert re.search(r"│ total\s+│\s+5 │", done.stdout), done.stdout
    assert stored_ids(url, gone) == {}
    assert stored_ids(url, kept) == {GPS: ["gps-0", "gps-1"]}

    again = cli("delete", "--device", gone, "--yes", url=url)
    assert again.exit_code == 0
    assert f"nothing stored for device {gone!r}" in again.stdout
    forced = cli("delete", "--device", kept, "--yes", url=url)
    assert forced.exit_code == 0, forced.output
    assert stored_ids(url, kept) == {}


def test_delete_over_http_reports_rows_per_table(
    client: TestClient, admin: str, device: dict[str, Any], url: str, write: Write,
    base: datetime, catalog: Catalog,
) -> None:  # fmt: skip
    gone, kept = new_device(), device["device_id"]
    write([gps(n, device=gone, at=base) for n in range(3)]
          + [heartrate(n, device=gone, at=base) for n in range(2)]
          + [heartrate(n, device=kept, at=base) for n in range(2)])  # fmt: skip

    refused = client.delete(f"/admin/devices/{gone}/data", headers=auth(device["token"]))
    assert_problem(refused, 403, "admin token")
    answer = client.delete(f"/admin/devices/{gone}/data", headers=auth(admin))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "device_id": gone,
        "deleted": {catalog[GPS].table: 3, catalog[HR].table: 2},
        "total": 5,
    }
    assert stored_ids(url, gone) == {}
    assert stored_ids(url, kept) == {HR: ["hr-0", "hr-1"]}
    again = client.delete(f"/admin/devices/{gone}/data", headers=auth(admin))
    assert again.json() == {"device_id": gone, "deleted": {}, "total": 0}


def test_a_read_that_runs_too_long_is_stopped_with_a_reason(
    ingest_settings: IngestSettings, admin: str
) -> None:
    from functions.ingest import create_app

    hasty = ingest_settings.model_copy(update={"ingest_read_timeout_seconds": 0.001})
    with TestClient(create_app(hasty)) as quick:
        answer = quick.get("/events/device.sensor.gps.raw", headers=auth(admin))
    assert answer.status_code == 503
    assert "LOOM_INGEST_READ_TIMEOUT_SECONDS" in answer.json()["detail"]
