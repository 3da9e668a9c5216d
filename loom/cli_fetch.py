"""`loom fetch …`: run the scheduled fetchers (calendar, email, Hacker News …) once.

The cluster runs ``loom fetch NAME`` from a CronJob per fetcher; ``loom dev`` runs
them every ``LOOM_FETCH_INTERVAL_SECONDS``. By hand it fetches now, or shows where
each account stands (``--status``).
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from loom.catalog import default_catalog
from loom.settings import LoomSettings, load_settings, settings_for

__all__ = ["fetch_cmd"]

console = Console()
err_console = Console(stderr=True)


def fetch_cmd(
    names: Annotated[
        list[str] | None, typer.Argument(help="fetchers to run (default: every one with accounts)")
    ] = None,
    account: Annotated[
        list[str] | None, typer.Option("--account", "-a", help="only these accounts (by key)")
    ] = None,
    force: Annotated[bool, typer.Option(help="run accounts still backing off")] = False,
    status: Annotated[
        bool, typer.Option("--status", help="show each account's cursor and back-off only")
    ] = False,
) -> None:
    """Fetch new items from external sources into Kafka, resuming where each account stopped."""
    from loom.runtime.fetch_host import run_fetchers
    from loom.runtime.registry import GraphError, discover

    settings = load_settings(LoomSettings)
    if status:
        asyncio.run(_show_status(names or [], settings))
        return
    registry = discover()
    try:
        specs = [registry.fetcher(n) for n in names] if names else list(registry.fetchers.values())
    except GraphError as exc:
        err_console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    with_accounts = [s for s in specs if s.accounts(settings_for(s.settings_cls, settings))]
    for spec in specs:
        if spec not in with_accounts:
            console.print(f"{spec.name}: no accounts configured "
                          f"(set LOOM_{spec.name.upper()}_ACCOUNTS); skipped")  # fmt: skip
    try:
        reports = asyncio.run(run_fetchers(with_accounts, settings, default_catalog(),
                                           only=account or (), force=force))  # fmt: skip
    except ValueError as exc:
        err_console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    table = Table("fetcher", "account", "status", "events", "skipped", "note")
    for r in reports:
        note = r.error or ""
        if r.next_attempt_at is not None:
            note = f"next try {r.next_attempt_at:%Y-%m-%d %H:%M:%S}Z; {note}"
        colour = {"ok": "green", "failed": "red"}.get(r.status, "yellow")
        table.add_row(r.fetcher, r.account, f"[{colour}]{r.status}[/]", str(r.emitted),
                      str(r.invalid), note)  # fmt: skip
    console.print(table)
    if any(r.status == "failed" for r in reports):
        raise typer.Exit(1)


async def _show_status(names: list[str], settings: LoomSettings) -> None:
    from loom.runtime.cursors import PostgresCursorStore

    table = Table("fetcher", "account", "events", "last success", "failures", "next try", "error")
    async with PostgresCursorStore.connect(settings.database_url) as cursors:
        for row in await cursors.rows():
            if names and row.fetcher not in names:
                continue
            when = f"{row.last_success_at:%Y-%m-%d %H:%M}" if row.last_success_at else "never"
            retry = f"{row.next_attempt_at:%Y-%m-%d %H:%M}" if row.next_attempt_at else ""
            table.add_row(row.fetcher, row.account, str(row.emitted_total), when,
                          str(row.failures), retry, row.last_error or "")  # fmt: skip
    console.print(table)
