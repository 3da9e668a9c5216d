"""`loom dev`: the whole system on one machine with the embedded default."""

from __future__ import annotations

import os
import shutil
import signal
import threading
from pathlib import Path

from rich.console import Console

from loom.catalog import Catalog
from loom.settings import LoomSettings, load_settings

__all__ = ["run_dev"]


def _admin_token(data_dir: Path, database_url: str) -> tuple[str | None, bool]:
    """The admin token: created (and saved to data_dir) on first start, else read back."""
    from functions.ingest.auth import admin_token_exists, create_admin_token

    saved = data_dir / "admin-token"
    if saved.exists():
        return saved.read_text().strip(), False
    if admin_token_exists(database_url):
        return None, False  # made elsewhere (external database); not ours to show
    token = create_admin_token(database_url, "loom dev")
    saved.write_text(token + "\n")
    saved.chmod(0o600)
    return token, True


def _terminate_like_interrupt() -> None:
    """SIGTERM/SIGHUP (``timeout``, systemd, a closed terminal) stop like Ctrl-C: uvicorn
    re-raises the signal it caught once it has shut down, and the default action of
    those would end the process there, leaving Kafka and PostgreSQL running."""

    def interrupt(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupt)


def _shield() -> None:
    """Ignore further Ctrl-C/TERM/HUP: a second signal (or make passing one on) must not
    cut the shutdown short and leave Kafka or PostgreSQL running with nobody to stop them."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)


def run_dev(
    data_dir: Path,
    *,
    fresh: bool,
    catalog: Catalog,
    console: Console,
    urls: dict[str, str] | None = None,
) -> None:
    import uvicorn

    from loom.db import migrate
    from loom.kafka import create_topics
    from loom.runtime.fetch_host import fetch_periodically
    from loom.runtime.registry import discover
    from loom.runtime.router import Router
    from loom.services import KafkaServer, LocalServices, PostgresServer
    from loom.serving import SERVICES, uvicorn_config
    from loom.store import maintain_periodically

    _terminate_like_interrupt()
    if fresh:
        shutil.rmtree(data_dir, ignore_errors=True)
    external_kafka = os.environ.get("LOOM_KAFKA_BOOTSTRAP_SERVERS")
    external_db = os.environ.get("LOOM_DATABASE_URL")
    services = LocalServices(data_dir.resolve(), preferred_ports=True)
    started: list[KafkaServer | PostgresServer] = []
    try:
        with console.status("starting Kafka and PostgreSQL…"):
            if not external_kafka:
                started.append(services.kafka.start())
            if not external_db:
                started.append(services.postgres.start())
        env = {
            "LOOM_KAFKA_BOOTSTRAP_SERVERS": external_kafka or services.kafka.bootstrap_servers,
            "LOOM_DATABASE_URL": external_db or services.postgres.url,
            "LOOM_STORE_BLOB_URL": os.environ.get("LOOM_STORE_BLOB_URL")
            or (data_dir.resolve() / "blobs").as_uri(),
        }
        os.environ.update(env)
        settings = load_settings(LoomSettings)
        with console.status("creating topics and migrating the database…"):
            created, updated = create_topics(catalog, settings)
            migrate(settings.database_url, backend=settings.store_backend)
            token, new = _admin_token(data_dir, settings.database_url)
        (data_dir / "env").write_text("".join(f"export {k}={v}\n" for k, v in env.items()))
        url = (
            f"http://{'127.0.0.1' if settings.host == '0.0.0.0' else settings.host}:{settings.port}"
        )
        console.print(f"[bold green]Loom dev is up[/] ({len(catalog)} event types, "
                      f"{len(created)} topics created, {len(updated)} existing)")  # fmt: skip
        console.print(f"  ingest:      {url}   (API docs: {url}/docs)", highlight=False)
        for key, value in env.items():
            console.print(f"  {key}={value}", highlight=False)
        if token:
            note = "new, saved in" if new else "from"
            console.print(f"  admin token: {token}   ({note} {data_dir / 'admin-token'})",
                          highlight=False)  # fmt: skip
        console.print(f"  `source {data_dir / 'env'}` points other shells here.  Ctrl-C stops.")
        registry = discover()
        router = Router(registry, catalog, settings, urls=urls or {}).start()
        stop_maintenance = threading.Event()
        maintain_periodically(settings, catalog, stop_maintenance)
        fetching = fetch_periodically(registry, settings, catalog, stop_maintenance)
        names = ", ".join(r.spec.name for r in router.runners) or "none registered yet"
        console.print(f"  functions:   {names}", highlight=False)
        fetchers = ", ".join(sorted(registry.fetchers)) or "none"
        note = "running" if fetching else "no accounts configured (LOOM_<NAME>_ACCOUNTS)"
        console.print(f"  fetchers:    {fetchers} ({note})", highlight=False)
        config = uvicorn_config(SERVICES["ingest"], host=settings.host, port=settings.port,
                                log_level="warning")  # fmt: skip
        try:
            uvicorn.Server(config).run()
        finally:
            _shield()
            stop_maintenance.set()
            with console.status("draining functions…"):
                router.stop()
    finally:
        _shield()
        with console.status("stopping…"):
            services.stop()
        console.print("stopped cleanly")
