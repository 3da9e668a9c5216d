"""The `loom` command line. Every option also reads its ``LOOM_*`` environment variable."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from loom.catalog import Catalog, load_catalog
from loom.cli_data import delete_cmd, export_cmd
from loom.cli_db import db_app
from loom.cli_fetch import fetch_cmd
from loom.cli_send import send_cmd
from loom.errors import LoomError
from loom.logging import configure_logging
from loom.settings import LoomSettings, load_settings

__all__ = ["app", "main"]

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help=__doc__, pretty_exceptions_enable=False
)
topics_app = typer.Typer(no_args_is_help=True, help="Kafka topics of the catalog.")
app.add_typer(topics_app, name="topics")
app.add_typer(db_app, name="db")
app.command("export")(export_cmd)
app.command("delete")(delete_cmd)
app.command("send")(send_cmd)
app.command("fetch")(fetch_cmd)
console = Console()
err_console = Console(stderr=True)

CatalogDir = Annotated[
    Path | None,
    typer.Option("--catalog-dir", envvar="LOOM_CATALOG_DIR", help="Directory of catalog.yaml."),
]


def _catalog(root: Path | None) -> Catalog:
    return load_catalog(root)


@app.command("catalog")
def catalog_cmd(
    catalog_dir: CatalogDir = None,
    markdown: Annotated[bool, typer.Option(help="Print the Markdown table.")] = False,
    write_readme: Annotated[
        Path | None, typer.Option(help="Regenerate the catalog table inside this README.")
    ] = None,
) -> None:
    """Check the catalog and every schema, then print the table of event types."""
    from loom.docs import catalog_markdown, replace_catalog_section

    catalog = _catalog(catalog_dir)
    if write_readme is not None:
        write_readme.write_text(replace_catalog_section(write_readme.read_text(), catalog))
        console.print(f"wrote the table of {len(catalog)} types into {write_readme}")
        return
    if markdown:
        console.print(catalog_markdown(catalog), markup=False, highlight=False, soft_wrap=True)
        return
    table = Table(title=f"Loom catalog: {len(catalog)} event types ({catalog.root})")
    for column in ("type / topic", "ingest", "key", "part.", "compr.", "retention", "table"):
        table.add_column(column, no_wrap=column != "table")
    for t in catalog:
        table.add_row(
            t.type, "✓" if t.ingest else "", t.key, str(t.partitions or "default"),
            t.compression, t.retention_text, t.table or "[dim]not stored[/]",
        )  # fmt: skip
    console.print(table)


@topics_app.command("create")
def topics_create(catalog_dir: CatalogDir = None) -> None:
    """Create every catalog topic (or bring its retention/compression in line)."""
    from loom.kafka import create_topics

    settings = load_settings(LoomSettings)
    created, updated = create_topics(_catalog(catalog_dir), settings)
    console.print(
        f"[green]{len(created)} created[/], {len(updated)} already there (configs re-applied) "
        f"on {settings.kafka_bootstrap_servers}"
    )


@topics_app.command("list")
def topics_list() -> None:
    """List the topics on the broker."""
    from loom.kafka import list_topics

    for name in list_topics(load_settings(LoomSettings)):
        console.print(name, highlight=False)


@topics_app.command("describe")
def topics_describe(
    names: Annotated[
        list[str] | None, typer.Argument(help="Topics; all catalog topics if none.")
    ] = None,
    catalog_dir: CatalogDir = None,
) -> None:
    """Partitions, replication, retention and compression of topics, beside the catalog's."""
    from loom.kafka import describe_topics

    settings = load_settings(LoomSettings)
    catalog = _catalog(catalog_dir)
    prefix = settings.kafka_topic_prefix
    names = names or [t.topic(prefix) for t in catalog]
    table = Table(title=f"topics on {settings.kafka_bootstrap_servers}")
    for column in ("topic", "partitions", "replicas", "retention.ms", "compression", "catalog"):
        table.add_column(column)
    for info in describe_topics(settings, names):
        wanted = (
            catalog.by_topic(info.name, prefix)
            if info.name.removeprefix(f"{prefix}." if prefix else "") in catalog
            else None
        )
        ok = wanted is not None and info.config.get("retention.ms") == str(wanted.retention_ms)
        table.add_row(
            info.name, str(info.partitions), str(info.replication_factor),
            info.config.get("retention.ms", "(default)"),
            info.config.get("compression.type", "(default)"),
            ("[green]matches[/]" if ok else "[red]differs[/]") if wanted else "[dim]unknown[/]",
        )  # fmt: skip
    console.print(table)


@app.command("serve")
def serve(
    function: Annotated[str, typer.Argument(help="What to serve: ingest.")],
    host: Annotated[str | None, typer.Option(help="Bind address [LOOM_HOST].")] = None,
    port: Annotated[int | None, typer.Option(help="Port [LOOM_PORT].")] = None,
) -> None:
    """Serve a Loom HTTP service (the container entrypoint of its Knative Service)."""
    from loom.serving import serve_app

    serve_app(function, host=host, port=port)


@app.command("serve-model")
def serve_model(
    model_name: Annotated[
        str, typer.Option("--model-name", envvar="LOOM_MODEL_NAME", help="A model in models/.")
    ],
    port: Annotated[int | None, typer.Option(help="Port [LOOM_PORT].")] = None,
) -> None:
    """Serve one model server over KServe's V2 protocol (the ServingRuntime's entrypoint)."""
    from loom.runtime.models import discover_models

    settings = load_settings(LoomSettings)
    try:
        known = discover_models()
    except ImportError as exc:
        err_console.print(f"[red]the models extra is not installed ({exc}): "
                          "uv sync --extra models[/]")  # fmt: skip
        raise typer.Exit(2) from None
    spec = known.find(model_name)
    if spec is None:
        names = ", ".join(sorted(known.models))
        err_console.print(f"[red]no model {model_name!r} (known: {names})[/]")
        raise typer.Exit(2)
    import kserve

    predictor = spec.predictor(spec.name)  # served under the name clients put in the URL
    predictor.load()
    kserve.ModelServer(http_port=port or settings.port, enable_grpc=False).start([predictor])


@app.command("replay")
def replay_cmd(
    topic: Annotated[str, typer.Option(help="Topic to read.")],
    start: Annotated[
        datetime, typer.Option("--from", help="First timestamp (ISO 8601, UTC if no offset).")
    ],
    end: Annotated[datetime, typer.Option("--to", help="End timestamp, not included.")],
    to_function: Annotated[
        str | None, typer.Option(help="Deliver to this function, in-process.")
    ] = None,
    to_url: Annotated[
        str | None, typer.Option(help="POST binary-mode CloudEvents to this URL.")
    ] = None,
    to_topic: Annotated[str | None, typer.Option(help="Copy the records to this topic.")] = None,
    rate: Annotated[float | None, typer.Option(help="Most events per second.")] = None,
) -> None:
    """Re-deliver a time range of a topic to a function, a URL or a topic."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from loom.runtime.registry import discover
    from loom.runtime.replay import replay

    settings = load_settings(LoomSettings)
    spec = discover()[to_function] if to_function else None
    start, end = (t if t.tzinfo else t.replace(tzinfo=UTC) for t in (start, end))
    with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=console) as bar:  # fmt: skip
        task = bar.add_task(f"replaying {topic}", total=None)
        result = replay(
            settings, _catalog(None), topic=topic, start=start, end=end, to_function=spec,
            to_url=to_url, to_topic=to_topic, rate=rate,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )  # fmt: skip
    console.print(f"{result.delivered} delivered, {result.failed} failed in {result.seconds:.1f}s")
    if result.failed:
        raise typer.Exit(1)


@app.command("manifests")
def manifests_cmd(
    out: Annotated[Path, typer.Option(help="Repository root to write into.")] = Path("."),
    check: Annotated[bool, typer.Option(help="Only report drift; exit 1 if any.")] = False,
) -> None:
    """Generate knative/, eventing/ and kserve/ from the registry and the catalog."""
    from loom.manifests import ManifestOptions, generate, render, write
    from loom.runtime.models import discover_models
    from loom.runtime.registry import discover

    files = generate(_catalog(None), discover(), ManifestOptions(), discover_models())
    if check:
        stale = [
            rel
            for rel, objs in files.items()
            if not (out / rel).exists() or (out / rel).read_text() != render(objs)
        ]
        for rel in stale:
            err_console.print(f"[red]stale:[/] {rel}", highlight=False)
        if stale:
            err_console.print("run `loom manifests` and commit the result")
            raise typer.Exit(1)
        console.print(f"{len(files)} manifest files are up to date")
        return
    changed = write(out, files)
    console.print(f"{len(files)} manifest files, {len(changed)} changed")


@app.command("admin-token")
def admin_token(
    label: Annotated[str, typer.Option(help="A note on who holds the token.")] = "admin",
) -> None:
    """Create an admin token in LOOM_DATABASE_URL's database and print it (shown once)."""
    from functions.ingest.auth import create_admin_token
    from loom.db import migrate

    settings = load_settings(LoomSettings)
    migrate(settings.database_url, backend=settings.store_backend)
    console.print(create_admin_token(settings.database_url, label), highlight=False)


@app.command("dev")
def dev(
    data_dir: Annotated[
        Path, typer.Option(envvar="LOOM_DATA_DIR", help="Where local services keep their data.")
    ] = Path(".loom"),
    fresh: Annotated[bool, typer.Option(help="Delete the data directory first.")] = False,
    function_url: Annotated[
        list[str] | None,
        typer.Option(
            help="NAME=URL: deliver to a `loom serve NAME` process instead of in-process."
        ),
    ] = None,
    catalog_dir: CatalogDir = None,
) -> None:
    """Start Kafka and PostgreSQL locally, create the topics, serve ingest and run the
    functions until Ctrl-C.

    Set LOOM_KAFKA_BOOTSTRAP_SERVERS or LOOM_DATABASE_URL to use an external
    service instead of starting one.
    """
    from loom.devrun import run_dev

    urls = dict(item.split("=", 1) for item in function_url or [] if "=" in item)
    if len(urls) != len(function_url or []):
        raise LoomError("--function-url takes NAME=URL")
    run_dev(data_dir, fresh=fresh, catalog=_catalog(catalog_dir), console=console, urls=urls)


def main() -> None:
    """Entry point: clear one-paragraph errors instead of tracebacks for Loom's own errors."""
    try:
        settings = load_settings(LoomSettings)
        configure_logging(settings.log_level, json=not console.is_terminal)
        app()
    except LoomError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise SystemExit(2) from None
