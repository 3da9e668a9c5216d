"""A small HTTP/1.1 load generator for the ingest benchmark (run as its own process).

Keep-alive connections on raw asyncio streams (uvloop), one request in flight per
connection; closed loop (as fast as answers come) or open loop at a fixed rate.
Each request gets fresh CloudEvent ids. Prints one JSON line of results.

    python -m bench.loadgen --port 8000 --token T --mode single --connections 32 --seconds 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from typing import Any

GPS = ('{"device_id": "%s", "timestamp": "2026-11-25T08:00:00Z", "latitude": 52.52, '
       '"longitude": 13.405, "accuracy": 4.2}')  # fmt: skip


def _request(args: argparse.Namespace, n: int) -> bytes:
    run = args.run_id
    if args.mode == "single":
        body = (GPS % args.device).encode()
        head = (
            f"POST / HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {args.token}\r\n"
            "Content-Type: application/json\r\nce-specversion: 1.0\r\n"
            f"ce-id: {run}-{n}\r\nce-source: /bench\r\nce-type: device.sensor.gps.raw\r\n"
        )
    else:
        data = GPS % args.device
        events = ",".join(
            f'{{"specversion":"1.0","id":"{run}-{n}-{k}","source":"/bench",'
            f'"type":"device.sensor.gps.raw","data":{data}}}'
            for k in range(args.batch)
        )
        body = f"[{events}]".encode()
        head = (f"POST / HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {args.token}\r\n"
                "Content-Type: application/cloudevents-batch+json\r\n")  # fmt: skip
    return f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body


async def _connection(
    args: argparse.Namespace, state: dict[str, Any], tick: asyncio.Queue[float | None] | None
) -> None:
    reader, writer = await asyncio.open_connection(args.host, args.port)
    try:
        while time.perf_counter() < state["end"]:
            if tick is not None:
                due = await tick.get()
                if due is None:  # the pacer is done
                    return
                scheduled = due
            n = state["next"]
            state["next"] += 1
            request = _request(args, n)
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            done = time.perf_counter()
            # open loop: latency counts from when the request was due (no coordinated omission)
            state["latencies"].append(done - (scheduled if tick is not None else started))
            state["statuses"][status] = state["statuses"].get(status, 0) + 1
    finally:
        writer.close()


async def _pacer(
    args: argparse.Namespace, state: dict[str, Any], tick: asyncio.Queue[float | None]
) -> None:
    interval = 1.0 / args.rate
    due = time.perf_counter()
    while due < state["end"]:
        now = time.perf_counter()
        if due > now:
            await asyncio.sleep(due - now)
        tick.put_nowait(due)
        due += interval
    for _ in range(args.connections):
        tick.put_nowait(None)


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    state: dict[str, Any] = {"next": 0, "latencies": [], "statuses": {}}
    state["end"] = time.perf_counter() + args.seconds
    tick: asyncio.Queue[float | None] | None = asyncio.Queue() if args.rate else None
    started = time.perf_counter()
    tasks = [asyncio.create_task(_connection(args, state, tick)) for _ in range(args.connections)]
    if tick is not None:
        tasks.append(asyncio.create_task(_pacer(args, state, tick)))
    await asyncio.wait(tasks, timeout=args.seconds + 30)
    elapsed = min(time.perf_counter(), state["end"] + max(state["latencies"], default=0)) - started
    for task in tasks:
        task.cancel()
    lat = sorted(state["latencies"])
    per_request = args.batch if args.mode == "batch" else 1
    ok = sum(v for k, v in state["statuses"].items() if 200 <= k < 300)

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(p * len(lat)))] * 1000 if lat else float("nan")

    return {"requests": len(lat), "ok_requests": ok, "events": ok * per_request,
            "seconds": elapsed, "statuses": state["statuses"], "p50_ms": pct(0.50),
            "p99_ms": pct(0.99), "p999_ms": pct(0.999)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--device", required=True)
    parser.add_argument("--mode", choices=["single", "batch"], default="single")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument(
        "--rate", type=float, default=0.0, help="requests/s; 0 = as fast as possible"
    )
    args = parser.parse_args()
    args.run_id = uuid.uuid4().hex[:12]
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    print(json.dumps(asyncio.run(_main(args))))


if __name__ == "__main__":
    main()
