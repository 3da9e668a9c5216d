"""`loom dev` end to end: it starts everything, an event posted to ingest lands in its
table, and SIGTERM stops it cleanly, Kafka and PostgreSQL included."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from loom.services._process import free_port


def _listening(url: str) -> bool:
    host, port = re.search(r"@([\d.]+):(\d+)/", url).groups()  # type: ignore[union-attr]
    with socket.socket() as s:
        return s.connect_ex((host, int(port))) == 0


def _ready(client: httpx.Client) -> bool:
    try:
        return client.get("/readyz").status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Not under pytest's basetemp (see the services fixture in conftest.py).
    with tempfile.TemporaryDirectory(prefix="loom-test-dev-") as data:
        yield Path(data)


def test_loom_dev_stores_what_is_posted_and_stops_cleanly_on_sigterm(data_dir: Path) -> None:
    port = free_port()
    env = {**os.environ, "LOOM_PORT": str(port), "LOOM_HOST": "127.0.0.1", "COLUMNS": "200"}
    for name in ("LOOM_KAFKA_BOOTSTRAP_SERVERS", "LOOM_DATABASE_URL"):
        env.pop(name, None)
    dev = subprocess.Popen(
        [sys.executable, "-m", "loom", "dev", "--data-dir", str(data_dir / "data")],
        cwd=data_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(dev.stdout.readline, "")))  # type: ignore[union-attr]
    reader.start()
    try:
        deadline = time.monotonic() + 180
        while not any("functions:" in line for line in lines):
            assert dev.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, "".join(lines)
            time.sleep(0.5)
        output = "".join(lines)
        token = re.search(r"admin token: (\S+)", output)[1]  # type: ignore[index]
        database = re.search(r"LOOM_DATABASE_URL=(\S+)", output)[1]  # type: ignore[index]
        assert "store" in re.search(r"functions:\s+(.*)", output)[1]  # type: ignore[index]

        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=30) as client:
            while not _ready(client):
                assert time.monotonic() < deadline, "ingest never became ready"
                time.sleep(0.5)
            made = client.post("/devices", json={"device_id": "dev-phone", "name": "phone"},
                               headers={"Authorization": f"Bearer {token}"})  # fmt: skip
            assert made.status_code == 201, made.text
            fix = {"device_id": "dev-phone", "timestamp": "2026-11-25T12:00:00Z",
                   "latitude": 48.85, "longitude": 2.35, "accuracy": 3.0}  # fmt: skip
            device_auth = {"Authorization": f"Bearer {made.json()['token']}"}
            sent = client.post("/sensor/gps", json=fix, headers=device_auth)
            assert sent.status_code == 201, sent.text

        stored: list[tuple[object, ...]] = []
        while not stored:
            assert time.monotonic() < deadline, "the event was never stored"
            time.sleep(0.5)
            with psycopg.connect(database) as conn:
                stored = conn.execute(
                    "SELECT device_id, latitude FROM device_sensor_gps_raw"
                ).fetchall()
        assert stored == [("dev-phone", 48.85)]
    finally:
        dev.send_signal(signal.SIGTERM)
        code = dev.wait(90)
        reader.join(10)
    output = "".join(lines)
    assert "stopped cleanly" in output, (code, output[-3000:])
    assert not _listening(database), "PostgreSQL outlived loom dev"
