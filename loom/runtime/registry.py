"""Functions and the processing graph: ``@function(consumes=[…], produces=[…])``.

A function is a pure ``async def handle(event, ctx) -> events``; the decorator
records what it consumes and produces. The registry of functions is the graph.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import re
from collections.abc import Awaitable, Callable, Iterable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loom.catalog import Catalog
from loom.errors import LoomError

if TYPE_CHECKING:
    from loom.runtime.context import Context
    from loom.runtime.event import Event
    from loom.runtime.fetcher import FetcherSpec
    from loom.settings import LoomSettings

__all__ = [
    "REGISTRY",
    "FunctionSpec",
    "GraphError",
    "Handler",
    "Lifespan",
    "Registry",
    "discover",
    "function",
]

Handler = Callable[["Event", "Context"], Awaitable["Event | Iterable[Event] | None"]]
# Opens what a function keeps between events (a connection pool, say) and closes it at the
# end; what it yields is ``ctx.state``. Every host enters it once, before the first event.
Lifespan = Callable[["LoomSettings"], AbstractAsyncContextManager[Any]]


_QUANTITY = re.compile(r"^[1-9][0-9]*(Mi|Gi)$")


class GraphError(LoomError):
    """A function names a type the catalog lacks, or two functions share a name."""


@dataclass(frozen=True)
class FunctionSpec:
    """One function: its name, handler, and the catalog types it consumes and produces."""

    name: str
    handler: Handler
    consumes: tuple[str, ...]
    produces: tuple[str, ...]
    ordered: bool = False
    models: tuple[str, ...] = ()
    description: str = ""
    lifespan: Lifespan | None = None
    concurrency: int | None = None
    retries: int | None = None
    memory: str | None = None

    def check(self, catalog: Catalog) -> None:
        for kind, names in (("consumes", self.consumes), ("produces", self.produces)):
            unknown = [n for n in names if n not in catalog]
            if unknown:
                raise GraphError(f"function {self.name!r} {kind} unknown type(s): {unknown}")
        loops = set(self.consumes) & set(self.produces)
        if loops:
            raise GraphError(f"function {self.name!r} would feed its own input: {sorted(loops)}")


@dataclass
class Registry:
    functions: dict[str, FunctionSpec] = field(default_factory=dict)
    fetchers: dict[str, FetcherSpec] = field(default_factory=dict)

    def add(self, spec: FunctionSpec) -> None:
        known = self.functions.get(spec.name)
        if known is not None and known.handler is not spec.handler:
            raise GraphError(f"two functions are named {spec.name!r}")
        self.functions[spec.name] = spec

    def add_fetcher(self, spec: FetcherSpec) -> None:
        known = self.fetchers.get(spec.name)
        if known is not None and known.fetch is not spec.fetch:
            raise GraphError(f"two fetchers are named {spec.name!r}")
        self.fetchers[spec.name] = spec

    def fetcher(self, name: str) -> FetcherSpec:
        try:
            return self.fetchers[name]
        except KeyError:
            known = ", ".join(sorted(self.fetchers)) or "none"
            raise GraphError(f"no fetcher {name!r} (known: {known})") from None

    def __getitem__(self, name: str) -> FunctionSpec:
        try:
            return self.functions[name]
        except KeyError:
            known = ", ".join(sorted(self.functions)) or "none"
            raise GraphError(f"no function {name!r} (known: {known})") from None

    def consumers_of(self, type_: str) -> list[FunctionSpec]:
        return [f for f in self.functions.values() if type_ in f.consumes]

    def check(self, catalog: Catalog) -> None:
        for spec in self.functions.values():
            spec.check(catalog)
        for source in self.fetchers.values():
            unknown = [n for n in source.produces if n not in catalog]
            if unknown:
                raise GraphError(f"fetcher {source.name!r} produces unknown type(s): {unknown}")


REGISTRY = Registry()


def function(
    *,
    consumes: Iterable[str],
    produces: Iterable[str] = (),
    name: str | None = None,
    ordered: bool = False,
    models: Iterable[str] = (),
    lifespan: Lifespan | None = None,
    concurrency: int | None = None,
    retries: int | None = None,
    memory: str | None = None,
    registry: Registry = REGISTRY,
) -> Callable[[Any], Any]:
    """Register ``handle`` as a function of the graph.

    ``ordered`` asks for one device's events in order (per-device state);
    ``models`` names the model servers it asks ``ctx.model(...)`` for;
    ``lifespan(settings)`` opens what the handler keeps between events (``ctx.state``);
    ``concurrency`` is how many deliveries one replica takes at once (Knative's
    containerConcurrency; unset keeps the manifests' default); ``retries`` is how often
    Knative redelivers a failed event, 1 s apart and doubling, before the dead-letter sink
    (set it where failures mean a dependency is down and waiting is right, as for the
    store; unset keeps the manifests' short default). ``memory`` is what one replica
    needs (a Kubernetes quantity such as ``"1Gi"``: requested and its limit), for
    functions that hold a model; unset keeps the manifests' 256Mi.
    """
    if memory is not None and not _QUANTITY.match(memory):
        raise GraphError(f"memory {memory!r} is not a Kubernetes quantity such as '512Mi'")

    def register(handler: Any) -> Any:
        spec = FunctionSpec(
            name=name or _default_name(handler),
            handler=handler,
            consumes=tuple(consumes),
            produces=tuple(produces),
            ordered=ordered,
            models=tuple(models),
            lifespan=lifespan,
            concurrency=concurrency,
            retries=retries,
            memory=memory,
            description=(handler.__doc__ or "").strip().split("\n")[0],
        )
        registry.add(spec)
        handler.spec = spec
        return handler

    return register


def _default_name(handler: Any) -> str:
    """``vad`` for ``functions.vad.handler.handle``; else the handler's own name."""
    parts = str(handler.__module__).split(".")
    return parts[-2] if len(parts) > 1 and parts[-1] == "handler" else str(handler.__name__)


def discover(package: str = "functions", registry: Registry = REGISTRY) -> Registry:
    """Import ``<package>.<name>.handler`` (functions) and ``<package>.<name>.fetcher``
    (scheduled fetchers) for every sub-package that has them, and every module named in
    ``LOOM_FUNCTION_MODULES`` (comma-separated; functions kept elsewhere)."""
    root = importlib.import_module(package)
    for info in pkgutil.iter_modules(root.__path__):
        if not info.ispkg:
            continue
        for module in ("handler", "fetcher"):
            # Looked up on disk: importing each package to ask would import every service.
            if any((Path(p) / info.name / f"{module}.py").exists() for p in root.__path__):
                importlib.import_module(f"{package}.{info.name}.{module}")
    for module in filter(None, os.environ.get("LOOM_FUNCTION_MODULES", "").split(",")):
        importlib.import_module(module.strip())
    return registry
