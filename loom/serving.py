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
    """Serve ``ingest`` or a registered function (its Knative Service entrypoint)."""
    import uvicorn

    settings = load_settings(LoomSettings)
    bind_host, bind_port, level = host or settings.host, port or settings.port, settings.log_level
    if name in SERVICES:
        module, _, _ = SERVICES[name].partition(":")
        importlib.import_module(module)  # fail here, clearly, if the service cannot import
        config = uvicorn_config(SERVICES[name], host=bind_host, port=bind_port, log_level=level)
        uvicorn.Server(config).run()
        return
    from loom.catalog import default_catalog
    from loom.logging import configure_logging
    from loom.runtime.http import create_function_app
    from loom.runtime.registry import discover

    registry = discover()
    if name not in registry.functions:
        known = ", ".join([*SERVICES, *sorted(registry.functions)])
        raise LoomError(f"no service or function {name!r}; choose one of: {known}")
    configure_logging(settings.log_level)
    app = create_function_app(registry[name], catalog=default_catalog(), settings=settings)
    config = uvicorn_config("", host=bind_host, port=bind_port, log_level=level)
    config.app, config.factory = app, False
    uvicorn.Server(config).run()
