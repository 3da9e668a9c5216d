"""Ingest throughput and latency on the local broker (acks=all), against the raw producer.

The server runs as its own process (`loom serve ingest`: uvicorn, uvloop, httptools)
and the load generator as another; events/s are divided by the CPU seconds the
server used, so the figure is per server core whatever the load generator costs.
The ceiling is a raw confluent-kafka producer loop in this process, same broker,
same event, same run: the ratio is what the HTTP front door costs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from bench.kafka_produce import measure
from loom.catalog import default_catalog
from loom.db import migrate
from loom.kafka import create_topics
from loom.services import LocalServices
from loom.services._process import free_port, stop_process, wait_until

TITLE = "Ingest: events/s per server core and latency, beside the raw producer ceiling"
SECONDS = float(os.environ.get("LOOM_BENCH_SECONDS", "5"))
TICK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def _loadgen(port: int, token: str, device: str, **options: Any) -> dict[str, Any]:
    args = [sys.executable, "-m", "bench.loadgen", "--port", str(port), "--token", token,
            "--device", device, "--seconds", str(SECONDS)]  # fmt: skip
    for key, value in options.items():
        args += [f"--{key}", str(value)]
    done = subprocess.run(args, capture_output=True, text=True, check=True, timeout=SECONDS + 120)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def run(services: LocalServices) -> list[dict[str, Any]]:
    settings = services.settings()
    catalog = default_catalog()
    create_topics(catalog, settings, [catalog["device.sensor.gps.raw"]])
    migrate(settings.database_url, backend=settings.store_backend)
    from functions.ingest.auth import create_admin_token

    admin = create_admin_token(settings.database_url, "bench")
    port = free_port()
    env = {**os.environ, "LOOM_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
           "LOOM_DATABASE_URL": settings.database_url, "LOOM_PORT": str(port),
           "LOOM_HOST": "127.0.0.1", "LOOM_LOG_LEVEL": "WARNING"}  # fmt: skip
    server = subprocess.Popen([sys.executable, "-m", "loom", "serve", "ingest"], env=env)
    rows = []
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until("ingest", lambda: _ready(url), timeout=60, process=server)
        device = httpx.post(f"{url}/devices", json={"name": "bench"},
                            headers={"authorization": f"Bearer {admin}"}).json()  # fmt: skip
        scenarios = [
            ("single events, max rate", {"mode": "single", "connections": 64}),
            ("single events at 1 000 ev/s", {"mode": "single", "connections": 64, "rate": 1000}),
            ("batches of 100, max rate", {"mode": "batch", "batch": 100, "connections": 8}),
        ]
        for label, options in scenarios:
            cpu = _cpu_seconds(server.pid)
            result = _loadgen(port, device["token"], device["device_id"], **options)
            cpu = _cpu_seconds(server.pid) - cpu
            rows.append({
                "scenario": label, "events/s": result["events"] / result["seconds"],
                "events/s per server core": result["events"] / max(cpu, 1e-9),
                "server CPU": cpu / result["seconds"], "p50 ms": result["p50_ms"],
                "p99 ms": result["p99_ms"],
                "non-2xx": sum(v for k, v in result["statuses"].items() if not 200 <= int(k) < 300),
            })  # fmt: skip
    finally:
        stop_process(server, timeout=30)
    payload = json.loads(
        '{"device_id": "d", "timestamp": "2026-11-25T08:00:00Z", "latitude": 52.52, '
        '"longitude": 13.405, "accuracy": 4.2}'
    )
    ceiling = measure(services, "device.sensor.gps.raw", payload, "lz4", seconds=SECONDS)
    per_core = ceiling["events/s per producer CPU-s"]
    rows.append({"scenario": "raw producer loop (ceiling)", "events/s": ceiling["events/s"],
                 "events/s per server core": per_core, "server CPU": None,
                 "p50 ms": None, "p99 ms": None, "non-2xx": 0})  # fmt: skip
    for row in rows:
        row["÷ ceiling (per core)"] = row["events/s per server core"] / per_core
    return rows


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
