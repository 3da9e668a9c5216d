"""`loom export` and `loom delete`: stored events out of the database, or out of it for good."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import sys
from collections.abc import AsyncIterator, Callable
from enum import StrEnum
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from loom.errors import LoomError, ServiceError
from loom.settings import LoomSettings, load_settings

if TYPE_CHECKING:
    from psycopg import AsyncConnection

    from loom.store.export import Format
    from loom.store.query import Row, Selection, StoreReader

__all__ = ["ExportFormat", "delete_cmd", "export_cmd"]

console = Console()
err_console = Console(stderr=True)


class ExportFormat(StrEnum):
    jsonl = "jsonl"
    parquet = "parquet"


def export_cmd(
    event_type: Annotated[
        str, typer.Option("--type", "-t", help="Event type to export, e.g. device.sensor.gps.raw.")
    ],
    fmt: Annotated[
        ExportFormat,
        typer.Option("--format", "-f", help="jsonl (CloudEvents, one a line) or parquet."),
    ] = ExportFormat.jsonl,
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            help="File to write, or - for stdout. Default: stdout for jsonl, <type>.parquet.",
        ),
    ] = None,
    device: Annotated[str | None, typer.Option("--device", help="Only this device.")] = None,
    start: Annotated[
        str | None, typer.Option("--from", help="First time, ISO 8601 (UTC if no offset).")
    ] = None,
    end: Annotated[str | None, typer.Option("--to", help="End time, not included.")] = None,
) -> None:
    """Export the stored events of one type, oldest first, as JSON Lines or Parquet.

    Reads LOOM_DATABASE_URL. A file is written beside its name and moved in place
    when complete, so a failed export leaves no half file behind.
    """
    from loom.store.query import StoreReader, parse_time

    reader = StoreReader.default()
    selection = reader.select(
        event_type,
        device_id=device,
        start=parse_time(start, "--from") if start is not None else None,
        end=parse_time(end, "--to") if end is not None else None,
    )
    kind: Format = "parquet" if fmt is ExportFormat.parquet else "jsonl"
    target = output or ("-" if kind == "jsonl" else f"{event_type}.parquet")
    if target == "-" and kind == "parquet" and sys.stdout.isatty():
        raise LoomError("Parquet is binary: give --output FILE or redirect stdout to a file")
    url = load_settings(LoomSettings).database_url
    if target == "-":
        sys.stdout.flush()
        try:
            total = asyncio.run(_export(url, reader, selection, kind, sys.stdout.buffer))
        except BrokenPipeError:  # e.g. `| head`: the reader has what it wanted
            _silence_stdout()
            raise typer.Exit(1) from None
        where = "stdout"
    else:
        path = Path(target)
        if not path.parent.is_dir():
            raise LoomError(f"cannot write {path}: {path.parent} is not a directory")
        partial = path.with_name(path.name + ".partial")
        try:
            with partial.open("wb") as sink:
                total = asyncio.run(_export(url, reader, selection, kind, sink))
            partial.replace(path)
        finally:
            partial.unlink(missing_ok=True)
        where = str(path)
    err_console.print(f"exported {total:,} {event_type} event(s) to {where}", highlight=False)


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so flushing it at exit raises nothing (see `signal`'s docs)."""
    with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


async def _connect(url: str) -> AsyncConnection[Any]:
    import psycopg

    try:
        return await psycopg.AsyncConnection.connect(url, connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise ServiceError(f"cannot connect to LOOM_DATABASE_URL's database: {exc}") from None


async def _export(
    url: str, reader: StoreReader, selection: Selection, fmt: Format, sink: IO[bytes]
) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from loom.store.export import encode

    async with await _connect(url) as conn, reader.export(conn, selection) as export:
        with Progress(
            "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
            TimeRemainingColumn(), console=err_console, transient=True,
        ) as bar:  # fmt: skip
            task = bar.add_task(f"exporting {selection.type}", total=export.total)
            counted = _counted(export.chunks(), lambda n: bar.advance(task, n))
            async for piece in encode(counted, fmt):
                sink.write(piece)
            sink.flush()
        return export.total


async def _counted(
    chunks: AsyncIterator[list[Row]], advance: Callable[[int], None]
) -> AsyncIterator[list[Row]]:
    async for rows in chunks:
        yield rows
        advance(len(rows))


def delete_cmd(
    device: Annotated[str, typer.Option("--device", help="The device whose events to delete.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete every stored event of a device, from every event table, in one transaction.

    The device stays registered (`DELETE /devices/{id}` revokes it): events it sends,
    or that are still in Kafka, are stored again. Media blobs are kept.
    """
    url = load_settings(LoomSettings).database_url
    stored = asyncio.run(_stored(url, device))
    if not stored:
        console.print(f"nothing stored for device {device!r}", highlight=False)
        return
    if not yes:
        typer.confirm(
            f"Delete {sum(stored.values()):,} stored event(s) of device {device!r} "
            f"({len(stored)} type(s))? This cannot be undone",
            abort=True,
        )
    deleted = asyncio.run(_delete(url, device))
    table = Table(title=f"deleted events of {device}")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, rows in sorted(deleted.items()):
        table.add_row(name, f"{rows:,}")
    table.add_section()
    table.add_row("total", f"{sum(deleted.values()):,}")
    console.print(table)


async def _stored(url: str, device: str) -> dict[str, int]:
    from loom.store.query import StoreReader

    async with await _connect(url) as conn:
        activity = await StoreReader.default().activity(conn, device)
    return {a.type: a.count for a in activity}


async def _delete(url: str, device: str) -> dict[str, int]:
    from loom.store.query import StoreReader

    async with await _connect(url) as conn:
        return await StoreReader.default().delete_device(conn, device)
