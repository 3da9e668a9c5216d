"""`loom send`: post a JSON Lines file (or stdin) to ingest as CloudEvents.

Each line is one event's ``data`` (with ``--type``), or a whole CloudEvent with
``--cloudevents`` (missing ``id``, ``source``, ``time`` are filled in; ``--type``
is the default type). Lines go in batches through :class:`loom.client.LoomClient`,
so 5xx, 429 and lost connections are retried with backoff. A line that is not
JSON, or that ingest refuses, is reported with its reason; the exit code is 1 if
any line was refused or could not be sent. ``--queue`` writes every event to the
client's on-disk queue first, so what ingest cannot take now is sent by the next
``loom send --queue`` (an empty input only flushes the queue).
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from loom.errors import LoomError

if TYPE_CHECKING:
    from loom.client import LoomClient
    from loom.client.events import EventResult

__all__ = ["send_cmd"]

console = Console()
err_console = Console(stderr=True)
SHOWN_REJECTIONS = 20


@dataclass
class _Tally:
    sent: int = 0
    retried: int = 0
    queued: int = 0
    unsent: int = 0
    rejected: list[tuple[str, str, int, str]] = field(default_factory=list)  # line, id, status, why

    def refuse(self, line: int | str, event_id: str, status: int, reason: str) -> None:
        self.rejected.append((str(line), event_id, status, reason))


@dataclass
class _Line:
    number: int
    size: int
    event: dict[str, Any] | None = None
    error: str | None = None


def _lines(
    stream: IO[bytes], client: LoomClient, event_type: str | None, cloudevents: bool
) -> Iterator[_Line]:
    for number, raw in enumerate(stream, start=1):
        line = _Line(number, len(raw))
        if not raw.strip():
            line.error = ""  # blank: skipped quietly
            yield line
            continue
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            line.error = f"not JSON: {exc}"
            yield line
            continue
        if not cloudevents and not event_type:  # (an empty input only flushes the queue)
            raise LoomError(
                "give the event type with --type, or whole CloudEvents with --cloudevents"
            )
        try:
            if cloudevents:
                if not isinstance(value, dict):
                    raise LoomError("a CloudEvent must be a JSON object")
                line.event = client.complete({"type": event_type, **value} if event_type else value)
            else:
                line.event = client.event(str(event_type), value)
        except LoomError as exc:
            line.error = str(exc)
        yield line


class _Pace:
    """Keeps the average at or under ``rate`` events per second."""

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self.start = time.monotonic()
        self.count = 0

    def take(self, n: int) -> None:
        if self.rate:
            ahead = self.start + self.count / self.rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
        self.count += n


def _dispatch(client: LoomClient, batch: list[_Line], tally: _Tally, queue: bool) -> bool:
    """Send one batch; False once ingest cannot be reached (stop sending)."""
    from loom.client import Unavailable

    events = [line.event for line in batch if line.event is not None]
    where = {str(line.event["id"]): line.number for line in batch if line.event is not None}
    if queue:
        client.enqueue_events(events)
        try:
            flushed = client.flush()
        except Unavailable as exc:
            err_console.print(f"[yellow]{exc}[/]; what is left stays queued", highlight=False)
            return False
        tally.sent += flushed.sent
        tally.retried += flushed.retried
        for r in flushed.rejected:
            tally.refuse(where.get(r.id, "queued earlier"), r.id, r.status, r.detail or "")
        return True
    try:
        result = client.send_batch(events)
    except Unavailable as exc:
        err_console.print(f"[red]{exc}[/]", highlight=False)
        decided = exc.result.results if exc.result is not None else []
        _count(decided, batch, tally)
        tally.unsent += len(events) - sum(1 for r in decided if r.accepted or not r.retryable)
        return False
    tally.retried += result.retried
    _count(result.results, batch, tally)
    tally.unsent += sum(1 for r in result.results if r.retryable and not r.accepted)
    return True


def _count(results: list[EventResult], batch: list[_Line], tally: _Tally) -> None:
    numbers = [line.number for line in batch if line.event is not None]
    for r in results:
        if r.accepted:
            tally.sent += 1
        elif not r.retryable:
            tally.refuse(numbers[r.index], r.id, r.status, r.detail or "")


def _summary(tally: _Tally, queue_path: Path | None) -> None:
    table = Table(title="loom send", show_header=False)
    table.add_column("what")
    table.add_column("events", justify="right")
    table.add_row("sent", f"[green]{tally.sent:,}[/]")
    table.add_row("rejected", f"[red]{len(tally.rejected):,}[/]" if tally.rejected else "0")
    table.add_row("retried", f"{tally.retried:,}")
    if tally.unsent:
        table.add_row("not sent (ingest unavailable)", f"[red]{tally.unsent:,}[/]")
    if queue_path is not None:
        table.add_row(f"waiting in {queue_path}", f"{tally.queued:,}")
    console.print(table)
    if not tally.rejected:
        return
    reasons = Table(title="rejected")
    for column in ("line", "id", "status", "reason"):
        reasons.add_column(column, overflow="fold")
    ordered = sorted(tally.rejected, key=lambda r: int(r[0]) if r[0].isdigit() else 0)
    for line, event_id, status, reason in ordered[:SHOWN_REJECTIONS]:
        reasons.add_row(line, event_id or "-", str(status or "-"), reason)
    if len(tally.rejected) > SHOWN_REJECTIONS:
        reasons.add_row("…", "", "", f"and {len(tally.rejected) - SHOWN_REJECTIONS} more")
    console.print(reasons)


def send_cmd(
    file: Annotated[
        str, typer.Argument(envvar="LOOM_SEND_FILE", help="JSON Lines file, or - for stdin.")
    ] = "-",
    event_type: Annotated[
        str | None,
        typer.Option(
            "--type",
            "-t",
            envvar="LOOM_SEND_TYPE",
            help="Event type of every line (the default type with --cloudevents).",
        ),
    ] = None,
    cloudevents: Annotated[
        bool,
        typer.Option(envvar="LOOM_SEND_CLOUDEVENTS", help="Each line is a whole CloudEvent."),
    ] = False,
    url: Annotated[
        str, typer.Option(envvar="LOOM_URL", help="Ingest's base URL.")
    ] = "http://localhost:8000",
    token: Annotated[
        str | None, typer.Option(envvar="LOOM_TOKEN", help="The device's token.")
    ] = None,
    device_id: Annotated[
        str | None,
        typer.Option(envvar="LOOM_DEVICE_ID", help="Fills data.device_id and the source."),
    ] = None,
    source: Annotated[
        str | None,
        typer.Option(envvar="LOOM_SOURCE", help="CloudEvent source (default /devices/<id>)."),
    ] = None,
    batch: Annotated[
        int, typer.Option(envvar="LOOM_SEND_BATCH", min=1, help="Events per request.")
    ] = 100,
    rate: Annotated[
        float | None,
        typer.Option(envvar="LOOM_SEND_RATE", min=0, help="Most events per second."),
    ] = None,
    queue: Annotated[
        bool,
        typer.Option(envvar="LOOM_SEND_QUEUE", help="Persist to the on-disk queue first."),
    ] = False,
    queue_path: Annotated[
        Path | None,
        typer.Option(envvar="LOOM_QUEUE_PATH", help="The queue file (default: user cache)."),
    ] = None,
    timeout: Annotated[
        float, typer.Option(envvar="LOOM_TIMEOUT", min=0.1, help="Seconds per request.")
    ] = 10.0,
    retries: Annotated[
        int,
        typer.Option(envvar="LOOM_SEND_RETRIES", min=1, help="Tries per request, the first too."),
    ] = 6,
) -> None:
    """Post a file of JSON Lines as events, e.g. to import history.

    `loom send --type device.sensor.gps.raw fixes.jsonl` sends each line as one
    event's data; `--cloudevents` reads whole CloudEvents. Prints a summary (sent,
    rejected with reasons, retried); exits 1 if any line was rejected or not sent.
    """
    from loom.client import LoomClient, RetryPolicy

    if not token:
        raise LoomError("give the device's token: --token or LOOM_TOKEN")
    if rate:  # a request carries at most a tenth of a second's worth: an even pace
        batch = min(batch, max(1, math.ceil(rate / 10)))
    stream = sys.stdin.buffer if file == "-" else _open(Path(file))
    total = Path(file).stat().st_size if file != "-" else None
    tally, pace = _Tally(), _Pace(rate)
    with (
        contextlib.nullcontext() if file == "-" else stream,
        LoomClient(
            url, token, device_id=device_id, source=source, queue_path=queue_path,
            timeout=timeout, max_batch=batch, retry=RetryPolicy(attempts=retries),
        ) as client,
        Progress(
            TextColumn("[progress.description]{task.description}"), BarColumn(),
            TextColumn("{task.fields[events]:,} events"), TimeElapsedColumn(),
            console=err_console, transient=True,
        ) as bar,
    ):  # fmt: skip
        task = bar.add_task(f"sending to {url}", total=total, events=0)
        reachable = _run(client, _lines(stream, client, event_type, cloudevents),
                         tally, bar, task, pace, batch, queue)  # fmt: skip
        if queue:
            if reachable and len(client.queue):
                _flush_rest(client, tally)
            tally.queued = len(client.queue)
    _summary(tally, client.queue_path if queue else None)
    if tally.rejected or tally.unsent:
        raise typer.Exit(1)


def _open(path: Path) -> IO[bytes]:
    try:
        return path.open("rb")
    except OSError as exc:
        raise LoomError(f"cannot read {path}: {exc.strerror}") from None


def _run(
    client: LoomClient,
    lines: Iterator[_Line],
    tally: _Tally,
    bar: Progress,
    task: TaskID,
    pace: _Pace,
    size: int,
    queue: bool,
) -> bool:
    """Send every line in batches of ``size``; True unless ingest became unreachable."""
    reachable, pending = True, []
    events = 0
    for line in lines:
        bar.advance(task, line.size)
        if line.error is not None:
            if line.error:
                tally.refuse(line.number, "", 0, line.error)
            continue
        pending.append(line)
        events += 1
        bar.update(task, events=events)
        if len(pending) >= size:
            reachable = _send_or_keep(client, pending, tally, pace, queue, reachable)
            pending = []
    if pending:
        reachable = _send_or_keep(client, pending, tally, pace, queue, reachable)
    return reachable


def _send_or_keep(
    client: LoomClient,
    batch: list[_Line],
    tally: _Tally,
    pace: _Pace,
    queue: bool,
    reachable: bool,
) -> bool:
    """Send ``batch`` while ingest answers; once it does not, queue it (``--queue``) or
    count it as not sent."""
    if reachable:
        pace.take(len(batch))
        return _dispatch(client, batch, tally, queue)
    if queue:
        client.enqueue_events([line.event for line in batch if line.event is not None])
    else:
        tally.unsent += len(batch)
    return False


def _flush_rest(client: LoomClient, tally: _Tally) -> None:
    from loom.client import Unavailable

    try:
        flushed = client.flush()
    except Unavailable as exc:
        err_console.print(f"[yellow]{exc}[/]; what is left stays queued", highlight=False)
        return
    tally.sent += flushed.sent
    tally.retried += flushed.retried
    for r in flushed.rejected:
        tally.refuse("queued earlier", r.id, r.status, r.detail or "")
