"""The function runtime: cold start and memory of `loom serve` for a function with no
model, and events/s through a no-op function on the local runner's router, beside a
bare consumer loop over the same records (the ceiling) in the same run."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import Consumer, Producer

from loom.catalog import default_catalog
from loom.events import to_kafka
from loom.kafka import consumer_config, create_topics, producer_config
from loom.runtime.event import Event
from loom.runtime.registry import REGISTRY, discover
from loom.runtime.router import FunctionRunner
from loom.services import LocalServices
from loom.services._process import free_port, stop_process

TITLE = "Function runtime: cold start, memory, and router throughput (no-op function)"
EVENTS = int(os.environ.get("LOOM_BENCH_ROUTER_EVENTS", "20000"))
DATA = {"device_id": "bench-1", "timestamp": "2026-11-25T08:00:00Z", "battery_level": 50.0,
        "is_charging": False}  # fmt: skip


def _cold_start() -> tuple[float, float]:
    """Seconds from process start to the first event answered, and RSS in MB then."""
    port = free_port()
    env = {**os.environ, "LOOM_FUNCTION_MODULES": "bench.noop", "LOOM_PORT": str(port),
           "LOOM_HOST": "127.0.0.1", "LOOM_LOG_LEVEL": "WARNING"}  # fmt: skip
    headers = {"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/bench",
               "ce-type": "device.state.power.raw", "content-type": "application/json"}  # fmt: skip
    started = time.perf_counter()
    server = subprocess.Popen([sys.executable, "-m", "loom", "serve", "noop"], env=env)
    try:
        while True:
            try:
                answer = httpx.post(f"http://127.0.0.1:{port}/", content=json.dumps(DATA),
                                    headers=headers, timeout=1)  # fmt: skip
                if answer.status_code < 300:
                    break
            except httpx.HTTPError:
                time.sleep(0.005)
            if server.poll() is not None or time.perf_counter() - started > 60:
                raise RuntimeError("the function never answered")
        seconds = time.perf_counter() - started
        status = Path(f"/proc/{server.pid}/status").read_text()
        rss = int(next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1])
        return seconds, rss / 1024
    finally:
        stop_process(server, timeout=10)


def _fill(services: LocalServices, prefix: str) -> tuple[Any, str]:
    settings = services.settings(kafka_topic_prefix=prefix)
    catalog = default_catalog()
    create_topics(catalog, settings, [catalog["device.state.power.raw"]])
    topic = catalog["device.state.power.raw"].topic(prefix)
    producer = Producer(producer_config(settings))
    for i in range(EVENTS):
        record = to_kafka(Event(type="device.state.power.raw", data=DATA, id=f"b{i}",
                                source="/bench", device_id="bench-1").to_cloudevent())  # fmt: skip
        while True:
            try:
                producer.produce(
                    topic, record.value, record.key, headers=list(record.headers.items())
                )
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush(60)
    return settings, topic


def _bare_consumer(settings: Any, topic: str) -> float:
    consumer = Consumer(consumer_config(settings, f"bare-{uuid.uuid4()}"))
    consumer.subscribe([topic])
    seen, started = 0, 0.0
    while seen < EVENTS:  # timed from the first record: joining the group is not throughput
        got = len([m for m in consumer.consume(500, timeout=1) if not m.error()])
        if got and not seen:
            started = time.perf_counter()
        seen += got
    seconds = time.perf_counter() - started
    consumer.close()
    return EVENTS / seconds


def _router(settings: Any) -> float:
    discover(registry=REGISTRY)
    __import__("bench.noop")
    runner = FunctionRunner(REGISTRY["noop"], default_catalog(), settings, batch=500)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    while not runner.handled:  # timed from the first event, as the bare loop is
        time.sleep(0.001)
    started, first = time.perf_counter(), runner.handled
    while runner.handled < EVENTS:
        time.sleep(0.01)
    seconds = time.perf_counter() - started
    rate = (EVENTS - first) / seconds
    runner.stop_event.set()
    thread.join(30)
    return rate


def run(services: LocalServices) -> list[dict[str, Any]]:
    starts = [_cold_start() for _ in range(3)]
    settings, topic = _fill(services, f"bench{uuid.uuid4().hex[:6]}")
    bare = _bare_consumer(settings, topic)
    routed = _router(settings)
    return [
        {"measure": "cold start to first event answered (median of 3)",
         "value": statistics.median(s for s, _ in starts), "unit": "s", "goal": "< 1 s"},
        {"measure": "RSS after the first event (median of 3)",
         "value": statistics.median(r for _, r in starts), "unit": "MB", "goal": "< 150 MB"},
        {"measure": f"router: no-op function, {EVENTS} events", "value": routed,
         "unit": "events/s", "goal": ""},
        {"measure": "bare consumer loop, same records (ceiling)", "value": bare,
         "unit": "events/s", "goal": ""},
        {"measure": "router ÷ ceiling", "value": routed / bare, "unit": "ratio", "goal": ""},
    ]  # fmt: skip
