"""`loom db …`: migrations and maintenance of Loom's PostgreSQL database."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from loom.catalog import default_catalog
from loom.settings import load_settings
from loom.store.partitions import MaintenanceReport

__all__ = ["db_app"]

db_app = typer.Typer(no_args_is_help=True, help="Migrations and maintenance of the database.")
console = Console()
err_console = Console(stderr=True)


@db_app.command("migrate")
def migrate_cmd() -> None:
    """Apply the migrations LOOM_DATABASE_URL's database lacks (safe to run at any time)."""
    from loom.db.migrate import migrate
    from loom.store.settings import StoreSettings

    settings = load_settings(StoreSettings)
    applied = migrate(settings.database_url, backend=settings.store_backend)
    for m in applied:
        console.print(f"applied {m.version:04d}_{m.name}")
    console.print(f"{len(applied)} migration(s) applied; the database is up to date")


@db_app.command("revision")
def revision_cmd(
    name: Annotated[str, typer.Argument(help="lower_case name of the new migration")] = "catalog",
    check: Annotated[
        bool, typer.Option(help="Only fail (exit 1) when the catalog needs a new migration.")
    ] = False,
) -> None:
    """Write the next migration of the event tables from the catalog's changes."""
    from loom.store.revision import plan_revision, read_lock, write_revision
    from loom.store.tables import event_tables

    tables = event_tables(default_catalog())
    if check:
        plan = plan_revision(tables, read_lock())
        for change in plan.changes:
            err_console.print(f"[red]not migrated:[/] {change}", highlight=False)
        if not plan.empty:
            err_console.print("run `loom db revision <name>` and commit the new migration")
            raise typer.Exit(1)
        console.print(f"the migrations create all {len(tables)} event tables of the catalog")
        return
    revision, path = write_revision(tables, name)
    if path is None:
        console.print("nothing to do: the migrations already match the catalog")
        return
    for change in revision.changes:
        console.print(f"  {change}")
    console.print(f"wrote {path}")


@db_app.command("maintain")
def maintain_cmd(
    now: Annotated[
        datetime | None, typer.Option(help="Act as if it were this time (UTC); for tests.")
    ] = None,
) -> None:
    """Make partitions ahead, drop those past retention, align TimescaleDB policies."""
    report = asyncio.run(_maintain(now))
    table = Table(title="loom db maintain")
    table.add_column("action")
    table.add_column("what")
    table.add_column("rows", justify="right")
    for name, rows in report.dropped.items():
        table.add_row("dropped", name, f"{rows:,}")
    for policy in report.policies:
        table.add_row("policy", policy, "")
    for name in report.busy:
        table.add_row("skipped", f"{name} (in use; next round)", "")
    for name, rows in report.pruned.items():
        table.add_row("pruned", f"{name} (past the responses' retention)", f"{rows:,}")
    console.print(table)
    console.print(
        f"{len(report.created)} partition(s) created, {len(report.dropped)} dropped "
        f"({sum(report.dropped.values()):,} rows past retention)"
    )


async def _maintain(now: datetime | None) -> MaintenanceReport:
    import psycopg

    from loom.store.partitions import maintain
    from loom.store.settings import StoreSettings
    from loom.store.tables import event_tables

    settings = load_settings(StoreSettings)
    if now is not None and now.tzinfo is None:
        from datetime import UTC

        now = now.replace(tzinfo=UTC)
    async with await psycopg.AsyncConnection.connect(
        settings.database_url, autocommit=True, connect_timeout=10
    ) as conn:
        return await maintain(
            conn,
            event_tables(default_catalog()),
            now=now,
            ahead_days=settings.store_partitions_ahead_days,
        )
