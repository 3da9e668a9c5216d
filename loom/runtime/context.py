"""What a handler may use: settings, a logger, ``emit`` and model clients. No I/O of its own."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from loom.runtime.event import Event
from loom.settings import LoomSettings

__all__ = ["Context", "ModelUnavailable"]


class ModelUnavailable(LookupError):
    """No client for the model a function asked for."""


@dataclass
class Context:
    """Given to each call of a handler; ``emitted`` collects what ``emit`` was given."""

    function: str
    settings: LoomSettings
    log: Any
    models: Mapping[str, Any] = field(default_factory=dict)
    emitted: list[Event] = field(default_factory=list)
    source: str = ""
    state: Any = None  # what the function's lifespan yielded, if it has one

    def emit(self, event: Event) -> None:
        """Send ``event`` on, besides whatever the handler returns."""
        self.emitted.append(event)

    def model(self, name: str) -> Any:
        """The client of model server ``name``: HTTP in the cluster, in-process locally."""
        try:
            return self.models[name]
        except KeyError:
            raise ModelUnavailable(
                f"function {self.function!r} asked for model {name!r}, which is not configured"
            ) from None
