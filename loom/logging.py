"""structlog set-up: JSON lines on stderr, with the standard library routed through it."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

__all__ = ["configure_logging", "get_logger"]


_generation = 0  # how many times logging was configured: loggers made before rebind


def configure_logging(level: str = "INFO", *, json: bool = True) -> None:
    """Log JSON lines (or coloured console lines when ``json`` is false) at ``level``."""
    global _generation
    _generation += 1
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.format_exc_info if json else structlog.dev.set_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


class _Logger:
    """A logger that takes the configuration in force when it logs, not when it was made:
    module-level loggers are made at import, often before ``configure_logging``."""

    __slots__ = ("_bound", "_cached", "_name")

    def __init__(self, name: str, bound: dict[str, Any]) -> None:
        self._name = name
        self._bound = bound
        self._cached: tuple[int, Any] = (-1, None)

    def bind(self, **values: Any) -> _Logger:
        return _Logger(self._name, {**self._bound, **values})

    def __getattr__(self, method: str) -> Any:
        generation, logger = self._cached
        if generation != _generation:
            logger = structlog.get_logger(self._name).bind(logger=self._name, **self._bound)
            self._cached = (_generation, logger)
        return getattr(logger, method)


def get_logger(name: str, **bound: Any) -> Any:
    """A structlog logger with ``logger=name`` and ``bound`` fields attached."""
    return _Logger(name, bound)
