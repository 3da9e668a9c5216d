"""The one root of every error Loom raises on purpose, and its small tree."""

from __future__ import annotations

__all__ = [
    "BodyTooLarge",
    "CatalogError",
    "ConfigError",
    "LoomError",
    "MalformedEvent",
    "ServiceError",
    "UnknownEventTypeError",
]


class LoomError(Exception):
    """Root of Loom's errors. Catch this to catch everything Loom raises on purpose."""


class ConfigError(LoomError):
    """A setting has a bad value; raised at start, naming the variable."""


class CatalogError(LoomError):
    """The catalog or one of its schemas is invalid; names the file and the field."""

    def __init__(self, file: str, field: str, problem: str) -> None:
        self.file = file
        self.field = field
        self.problem = problem
        super().__init__(f"{file}: {field}: {problem}")


class UnknownEventTypeError(LoomError, KeyError):
    """An event type (or topic) that is not in the catalog."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown event type"


class MalformedEvent(LoomError):
    """A request that is not a well-formed CloudEvent (or not JSON where JSON is needed)."""


class BodyTooLarge(LoomError):
    """A request body over its limit; ``extra`` carries the limit for the answer."""

    def __init__(self, detail: str, limit_bytes: int) -> None:
        super().__init__(detail)
        self.extra = {"limit_bytes": limit_bytes}


class ServiceError(LoomError):
    """A local service (Kafka, PostgreSQL) could not be installed, started or reached."""
