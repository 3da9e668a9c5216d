"""Run a Loom HTTP service with uvicorn (uvloop + httptools: the fastest pure-Python stack)."""

from __future__ import annotations

import importlib
from typing import Any

from loom.errors import LoomError
from loom.settings import LoomSettings, load_settings

__all__ = ["SERVICES", "serve_app", "uvicorn_config"]

# name → "module:factory" of an ASGI app factory
SERVICES = {"ingest": "functions.ingest.app:app_factory"}


def uvicorn_config(target: str, *, host: str, port: int, log_level: str = "info") -> Any:
    import uvicorn

    return uvicorn.Config(
        target,
        factory=True,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        ws="websockets-sansio",
        log_level=log_level.lower(),
        access_log=False,
        timeout_graceful_shutdown=15,
        lifespan="on",
    )


def serve_app(name: str, *, host: str | None = None, port: int | None = None) -> None:
    import uvicorn

    if name not in SERVICES:
        raise LoomError(f"no service {name!r}; choose one of: {', '.join(SERVICES)}")
    module, _, _ = SERVICES[name].partition(":")
    importlib.import_module(module)  # fail here, clearly, if the service cannot import
    settings = load_settings(LoomSettings)
    config = uvicorn_config(
        SERVICES[name], host=host or settings.host, port=port or settings.port,
        log_level=settings.log_level,
    )  # fmt: skip
    uvicorn.Server(config).run()
