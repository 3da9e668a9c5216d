"""`loom send` against the local fake ingest: batches, reasons, exit codes, the queue."""

from __future__ import annotations

import json
import time
from pathlib import Path

from typer.testing import CliRunner

from loom.cli import app
from loom.client import EventQueue
from loom.errors import LoomError
from tests.loom.client.fake_ingest import closed_port, problem, running

GPS = {"latitude": 52.52, "longitude": 13.405, "timestamp": "2026-11-25T08:15:30Z"}
runner = CliRunner()


def jsonl(path: Path, *lines: object) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


def send(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> object:
    return runner.invoke(
        app, ["send", *args], env={"COLUMNS": "200", "LOOM_TOKEN": "loom_t", **(env or {})},
        input=stdin,
    )  # fmt: skip


def summary(output: str) -> dict[str, str]:
    """The rows of the summary table: what -> count."""
    return {
        line.split("│")[1].strip(): line.split("│")[2].strip()
        for line in output.splitlines()
        if line.count("│") == 3
    }


def test_lines_go_in_batches_and_refusals_are_listed_with_reasons(tmp_path: Path) -> None:
    file = jsonl(tmp_path / "gps.jsonl", GPS, {**GPS, "latitude": 99}, "{not json", "", GPS, GPS)
    with running() as ingest:
        done = send("--type", "device.sensor.gps.raw", "--batch", "2", "--device-id", "p1",
                    "--url", ingest.url, str(file))  # fmt: skip
    assert done.exit_code == 1, done.output
    assert [len(r.json()) for r in ingest.requests] == [2, 2]
    assert [e["data"]["latitude"] for e in ingest.events()] == [52.52, 99, 52.52, 52.52]
    assert ingest.events()[0]["time"] == "2026-11-25T08:15:30Z"
    assert ingest.events()[0]["data"]["device_id"] == "p1"
    out = done.output
    assert summary(out)["sent"] == "3"
    assert summary(out)["rejected"] == "2"
    assert "'/latitude': 99 is greater than the maximum of 90" in out
    assert "not JSON" in out
    rows = [line for line in out.splitlines() if "│ 2 " in line or "│ 3 " in line]
    assert any("422" in row for row in rows)
    assert any("not JSON" in row for row in rows)


def test_all_taken_exits_zero_and_counts_retries(tmp_path: Path) -> None:
    file = jsonl(tmp_path / "gps.jsonl", GPS, GPS)
    with running() as ingest:
        ingest.answer(503, problem(503, "busy"), {"Retry-After": "0"})
        done = send("-t", "device.sensor.gps.raw", str(file), env={"LOOM_URL": ingest.url})
    assert done.exit_code == 0, done.output
    assert "retried" in done.output
    table = summary(done.output)
    assert table["sent"] == "2"
    assert table["retried"] == "2"
    assert table["rejected"] == "0"


def test_whole_cloudevents_from_stdin(tmp_path: Path) -> None:
    event = {"specversion": "1.0", "id": "given-id", "source": "/import", "type":
             "device.sensor.gps.raw", "data": {**GPS, "device_id": "p1"}}  # fmt: skip
    with running() as ingest:
        done = send("--cloudevents", "-", env={"LOOM_URL": ingest.url},
                    stdin=json.dumps(event) + "\n")  # fmt: skip
    assert done.exit_code == 0, done.output
    (got,) = ingest.events()
    assert (got["id"], got["source"]) == ("given-id", "/import")


def test_rate_limits_the_pace(tmp_path: Path) -> None:
    file = jsonl(tmp_path / "gps.jsonl", *[GPS] * 6)
    with running() as ingest:
        started = time.monotonic()
        done = send("-t", "device.sensor.gps.raw", "--rate", "10", "--url", ingest.url, str(file))
        elapsed = time.monotonic() - started
    assert done.exit_code == 0, done.output
    assert elapsed >= 0.5
    assert len(ingest.events()) == 6


def test_unreachable_ingest_exits_non_zero_or_queues_with_queue(tmp_path: Path) -> None:
    file = jsonl(tmp_path / "gps.jsonl", GPS, GPS, GPS)
    port = closed_port()
    url = f"http://127.0.0.1:{port}"
    done = send("-t", "device.sensor.gps.raw", "--retries", "2", "--url", url, str(file))
    assert done.exit_code == 1
    assert "not sent" in done.output
    queue = tmp_path / "q.db"
    env = {"LOOM_QUEUE_PATH": str(queue), "LOOM_SEND_QUEUE": "1", "LOOM_URL": url}
    done = send("-t", "device.sensor.gps.raw", "--retries", "2", "--batch", "2", str(file), env=env)
    assert done.exit_code == 0, done.output
    with EventQueue(queue) as q:
        assert len(q) == 3
    with running(port) as ingest:
        done = send("-", env=env, stdin="")
        assert done.exit_code == 0, done.output
    assert len(ingest.events()) == 3
    with EventQueue(queue) as q:
        assert len(q) == 0


def test_missing_token_or_type_is_a_clear_error(tmp_path: Path) -> None:
    file = jsonl(tmp_path / "gps.jsonl", GPS)
    done = runner.invoke(app, ["send", "-t", "device.sensor.gps.raw", str(file)], env={})
    assert isinstance(done.exception, LoomError)
    assert "LOOM_TOKEN" in str(done.exception)
    done = send(str(file))
    assert isinstance(done.exception, LoomError)
    assert "--type" in str(done.exception)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    done = send("-t", "device.sensor.gps.raw", str(tmp_path / "nope.jsonl"))
    assert isinstance(done.exception, LoomError)
    assert "nope.jsonl" in str(done.exception)
