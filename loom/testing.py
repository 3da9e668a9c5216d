"""Test helpers for Loom functions, shipped for users: golden-example events, a harness
that calls one function, and an in-memory broker that runs a whole graph.

    from loom.testing import FunctionHarness, assert_emitted

    async def test_power():
        harness = FunctionHarness(handle)
        made = await harness.call_example("device.state.power.raw")
        assert_emitted(made, "device.state.power.enriched", count=1)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any, Self

from loom.catalog import Catalog, default_catalog
from loom.errors import LoomError
from loom.runtime.event import Event
from loom.runtime.invoke import invoke
from loom.runtime.registry import FunctionSpec, Registry
from loom.settings import LoomSettings

__all__ = [
    "DeadLetter",
    "FetcherHarness",
    "FunctionHarness",
    "InMemoryBroker",
    "assert_emitted",
    "example_event",
]


def example_event(
    type_: str,
    *,
    name: str | None = None,
    valid: bool = True,
    device_id: str | None = None,
    catalog: Catalog | None = None,
) -> Event:
    """An event whose data is one of ``type_``'s golden examples (the first, or ``name``)."""
    catalog = catalog or default_catalog()
    examples = [e for e in catalog.examples(type_) if e.valid == valid]
    if name is not None:
        examples = [e for e in examples if e.path.stem == name]
    if not examples:
        raise LookupError(
            f"no {'valid' if valid else 'invalid'} golden example {name or ''} of {type_}"
        )
    data = examples[0].load()
    device = device_id or (data.get("device_id") if isinstance(data, dict) else None)
    return Event(type=type_, data=data, source=f"/devices/{device or 'test'}", device_id=device)


def assert_emitted(events: list[Event], type_: str, count: int | None = None) -> list[Event]:
    """The events of ``type_`` in ``events``; fails if there are none (or not ``count``)."""
    found = [e for e in events if e.type == type_]
    made = sorted({e.type for e in events})
    if count is None:
        assert found, f"no {type_} event was emitted (emitted: {made})"
    else:
        assert len(found) == count, f"{len(found)} {type_} events, expected {count} ({made})"
    return found


class FunctionHarness:
    """Calls one function as every host does (same checks), with no I/O of its own.

    A function with a lifespan (what it keeps between events, ``ctx.state``) is called
    inside ``async with FunctionHarness(handle) as harness:``, which opens and closes it,
    or given ``state=`` to use instead (e.g. a :class:`~loom.runtime.state.MemoryStateStore`).
    """

    def __init__(
        self,
        function: Any,
        *,
        catalog: Catalog | None = None,
        settings: LoomSettings | None = None,
        models: Mapping[str, Any] | None = None,
        state: Any = None,
    ) -> None:
        self.spec: FunctionSpec = function if isinstance(function, FunctionSpec) else function.spec
        self.catalog = catalog or default_catalog()
        self.settings = settings or LoomSettings()
        self.models = models or {}
        self.spec.check(self.catalog)
        self.state: Any = state  # given: used instead of the function's lifespan
        self._given_state = state is not None
        self._resources = AsyncExitStack()
        self._open = False

    async def __aenter__(self) -> Self:
        if self.spec.lifespan is not None and not self._given_state:
            self.state = await self._resources.enter_async_context(
                self.spec.lifespan(self.settings)
            )
        self._open = True
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._open = False
        await self._resources.aclose()

    async def call(self, event: Event) -> list[Event]:
        if self.spec.lifespan is not None and not self._open and not self._given_state:
            raise RuntimeError(
                f"function {self.spec.name!r} has a lifespan: "
                "call it inside `async with FunctionHarness(...) as harness:`"
            )
        return await invoke(self.spec, event, catalog=self.catalog, settings=self.settings,
                            models=self.models, state=self.state)  # fmt: skip

    async def call_example(self, type_: str, name: str | None = None, **kw: Any) -> list[Event]:
        return await self.call(example_event(type_, name=name, catalog=self.catalog, **kw))


@dataclass(frozen=True)
class DeadLetter:
    function: str
    event: Event
    reason: str


@dataclass
class InMemoryBroker:
    """Topics as lists; ``run`` delivers each event to every function that consumes it,
    publishes what they make, and repeats until nothing new is left: the graph in memory."""

    registry: Registry
    catalog: Catalog = field(default_factory=default_catalog)
    settings: LoomSettings = field(default_factory=LoomSettings)
    models: Mapping[str, Any] = field(default_factory=dict)
    topics: dict[str, list[Event]] = field(default_factory=lambda: defaultdict(list))
    dead_letters: list[DeadLetter] = field(default_factory=list)
    _queue: list[Event] = field(default_factory=list)

    def publish(self, event: Event) -> None:
        self.topics[event.type].append(event)
        self._queue.append(event)

    def events(self, type_: str) -> list[Event]:
        return list(self.topics.get(type_, []))

    async def run(self, max_steps: int = 100_000) -> int:
        """Deliver until the graph is idle; returns how many deliveries were made.

        The lifespans of the functions (``ctx.state``) are open for the whole run."""
        async with AsyncExitStack() as resources:
            states = {
                spec.name: await resources.enter_async_context(spec.lifespan(self.settings))
                for spec in self.registry.functions.values()
                if spec.lifespan is not None
            }
            return await self._deliver(states, max_steps)

    async def _deliver(self, states: Mapping[str, Any], max_steps: int) -> int:
        steps = 0
        while self._queue:
            event = self._queue.pop(0)
            for spec in self.registry.consumers_of(event.type):
                steps += 1
                if steps > max_steps:
                    raise RuntimeError(f"the graph did not settle in {max_steps} deliveries")
                try:
                    made = await invoke(spec, event, catalog=self.catalog,
                                        settings=self.settings, models=self.models,
                                        state=states.get(spec.name))  # fmt: skip
                except LoomError as exc:
                    self.dead_letters.append(DeadLetter(spec.name, event, str(exc)))
                    continue
                for out in made:
                    self.publish(out)
        return steps


class FetcherHarness:
    """Runs one fetcher as ``loom fetch`` does (same cursors, back-off and checks), with
    the events kept in ``events`` instead of sent to Kafka and the cursors in memory
    (or in ``cursors=``). Set ``sink_error`` to make the "Kafka" refuse the next batch."""

    def __init__(
        self,
        fetch: Any,
        *,
        settings: LoomSettings | None = None,
        catalog: Catalog | None = None,
        cursors: Any = None,
    ) -> None:
        from loom.runtime.cursors import MemoryCursorStore
        from loom.runtime.fetcher import FetcherSpec

        self.spec: FetcherSpec = fetch if isinstance(fetch, FetcherSpec) else fetch.spec
        self.settings = settings or LoomSettings()
        self.catalog = catalog or default_catalog()
        self.cursors = cursors or MemoryCursorStore()
        self.events: list[Event] = []
        self.sink_error: Exception | None = None

    async def _sink(self, events: list[Event]) -> None:
        if self.sink_error is not None:
            error, self.sink_error = self.sink_error, None
            raise error
        self.events.extend(events)

    async def run(self, *, only: tuple[str, ...] = (), force: bool = False) -> list[Any]:
        """One run over every account; returns its :class:`AccountReport` list."""
        from loom.runtime.fetch_host import run_fetcher

        return await run_fetcher(self.spec, self.settings, catalog=self.catalog,
                                 sink=self._sink, cursors=self.cursors, only=only,
                                 force=force)  # fmt: skip
