"""Raw confluent-kafka producer throughput on the local broker, acks=all, idempotent.

The ceiling any Loom producer (ingest, functions) can reach on this machine; and
the effect of the catalog's lz4 choice for high-volume types. Sizes are realistic
payloads: a GPS fix (small JSON) and a 1 s, 16 kHz audio chunk (base64 WAV).
"""

from __future__ import annotations

import array
import base64
import os
import random
import time
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from loom.events import make_event, to_kafka
from loom.kafka import producer_config
from loom.services import LocalServices

TITLE = "Kafka produce ceiling (binary CloudEvents, acks=all, idempotent, 1 broker)"
SECONDS = float(os.environ.get("LOOM_BENCH_SECONDS", "3"))


def _payloads() -> dict[str, dict[str, Any]]:
    gps = {"device_id": "bench-1", "timestamp": "2026-11-25T08:00:00Z", "latitude": 52.52,
           "longitude": 13.405, "accuracy": 4.2, "speed": 1.1}  # fmt: skip
    noise = random.Random(1)  # speech-like level of noise compresses about as badly as speech
    samples = array.array("h", (int(noise.gauss(0, 2000)) for _ in range(16000))).tobytes()
    audio = {"device_id": "bench-1", "timestamp": "2026-11-25T08:00:00Z", "sample_rate": 16000,
             "channels": 1, "format": "pcm_s16le", "duration_ms": 1000,
             "chunk_data": base64.b64encode(samples).decode()}  # fmt: skip
    return {"gps fix": gps, "1 s audio chunk": audio}


def measure(
    services: LocalServices,
    topic: str,
    data: dict[str, Any],
    compression: str,
    seconds: float = SECONDS,
) -> dict[str, Any]:
    """Produce ``data`` as binary CloudEvents to ``topic`` for ``seconds``, as fast as possible."""
    settings = services.settings()
    producer = Producer(producer_config(settings, **{"compression.type": compression}))
    record = to_kafka(make_event("bench", data, source="/bench", device_id="bench-1"))
    headers = list(record.headers.items())
    sent = 0
    started = time.perf_counter()
    cpu = time.process_time()
    while time.perf_counter() - started < seconds:
        for _ in range(1000):
            try:
                producer.produce(topic, record.value, record.key, headers=headers)
            except BufferError:
                producer.poll(0.01)
                continue
            sent += 1
        producer.poll(0)
    producer.flush(60)
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu
    return {
        "payload": "", "compression": compression, "bytes/event": len(record.value),
        "events/s": sent / wall, "MB/s": sent * len(record.value) / wall / 1e6,
        "events/s per producer CPU-s": sent / cpu,
    }  # fmt: skip


def run(services: LocalServices) -> list[dict[str, Any]]:
    admin = AdminClient({"bootstrap.servers": services.kafka.bootstrap_servers})
    rows = []
    for i, (label, data) in enumerate(_payloads().items()):
        for compression in ("none", "lz4"):
            topic = f"bench.produce.{i}.{compression}"
            for future in admin.create_topics([NewTopic(topic, 3, 1)]).values():
                future.result(30)
            row = measure(services, topic, data, compression)
            row["payload"] = label
            rows.append(row)
    return rows
