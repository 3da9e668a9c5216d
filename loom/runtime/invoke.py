"""Calling a handler: check the input, run it, check what it made. Transport-free.

Every host (Knative HTTP, the local runner, the test harness) calls :func:`invoke`,
so the same checks hold everywhere:

- input of a type the function does not consume, or data that breaks its schema,
  is :class:`PoisonEvent` (4xx, dead letter, never retried); so is, for an ordered
  function (per-device state), a time more than 10 minutes ahead of when Loom
  received the event, or before 2000;
- a handler that raises is :class:`HandlerFailed` (5xx, retried with backoff);
  :class:`Unavailable` (a dependency is down) is retried without limit;
- output of a type the function did not declare, or that breaks its schema, is
  :class:`BadOutput` (a bug in the function: retried, then dead-lettered).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from loom.catalog import Catalog, describe
from loom.errors import LoomError
from loom.events import RECORDED_TIME
from loom.logging import get_logger
from loom.runtime.context import Context
from loom.runtime.event import Event
from loom.runtime.registry import FunctionSpec
from loom.settings import LoomSettings

__all__ = ["BadOutput", "HandlerFailed", "PoisonEvent", "Unavailable", "invoke"]


class PoisonEvent(LoomError):
    """The input can never be handled: wrong type or invalid data."""

    def __init__(self, detail: str, errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(detail)
        self.errors = errors or []


class HandlerFailed(LoomError):
    """The handler raised; trying again later may succeed."""


class Unavailable(HandlerFailed):
    """Something the handler needs (a database, a model server) is down. Not the event's
    fault: hosts try again for as long as it takes and never dead-letter it."""


class BadOutput(LoomError):
    """The handler made an event it did not declare, or one that breaks its schema."""


async def invoke(
    spec: FunctionSpec,
    event: Event,
    *,
    catalog: Catalog,
    settings: LoomSettings,
    models: Mapping[str, Any] | None = None,
    state: Any = None,
) -> list[Event]:
    """Run ``spec``'s handler on ``event``; returns every event it made, checked."""
    if event.type not in spec.consumes:
        raise PoisonEvent(f"function {spec.name!r} does not consume {event.type!r}")
    violations = catalog.violations(event.type, event.data)
    if violations:
        raise PoisonEvent(
            f"{event.type} data breaks its schema at {describe(violations)}",
            [{"pointer": v.pointer, "message": v.message} for v in violations],
        )
    if spec.ordered:
        _check_clock(event)
    log = get_logger(f"loom.function.{spec.name}", function=spec.name, event_id=event.id,
                     device_id=event.device_id, type=event.type)  # fmt: skip
    ctx = Context(function=spec.name, settings=settings, log=log, models=models or {},
                  source=f"/loom/functions/{spec.name}", state=state)  # fmt: skip
    started = time.perf_counter()
    try:
        returned = await spec.handler(event, ctx)
    except LoomError:
        raise
    except Exception as exc:
        log.exception("function.failed")
        raise HandlerFailed(f"function {spec.name!r} failed: {type(exc).__name__}: {exc}") from exc
    made = [*_as_list(returned), *ctx.emitted]
    for out in made:
        if out.type not in spec.produces:
            raise BadOutput(f"function {spec.name!r} made {out.type!r}, which it does not declare")
        bad = catalog.violations(out.type, out.data)
        if bad:
            raise BadOutput(f"function {spec.name!r} made an invalid {out.type}: {describe(bad)}")
    log.debug("function.handled", made=len(made), seconds=time.perf_counter() - started)
    return made


# How far ahead of Loom's clock an ordered function takes an event. Further is a device
# clock gone wrong, and it would do lasting harm: the function's per-device state would
# then take every real event after it for a late one.
MAX_CLOCK_AHEAD = timedelta(minutes=10)
_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)  # before this, the device's clock was never set


def _check_clock(event: Event) -> None:
    received = event.extensions.get(RECORDED_TIME)
    try:
        reference = datetime.fromisoformat(received) if isinstance(received, str) else None
    except ValueError:
        reference = None
    reference = reference or datetime.now(UTC)
    # data.timestamp: the device's own time of the reading, which functions go by.
    stamp = event.data.get("timestamp") if isinstance(event.data, dict) else None
    moments = []
    if isinstance(stamp, str):
        with contextlib.suppress(ValueError):
            moments.append(("data.timestamp", datetime.fromisoformat(stamp.upper())))
    for name, moment in moments:
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        if moment > reference + MAX_CLOCK_AHEAD:
            raise PoisonEvent(
                f"{name} {moment.isoformat()} is {_ahead(moment - reference)} ahead of when "
                "Loom received it (a device clock gone wrong?)"
            )
        if moment < _EARLIEST:
            raise PoisonEvent(f"{name} {moment.isoformat()} is before 2000: the clock was not set")


def _ahead(delta: timedelta) -> str:
    minutes = delta.total_seconds() / 60
    return f"{minutes:.0f} min" if minutes < 120 else f"{minutes / 60:.1f} h"


def _as_list(returned: Event | Iterable[Event] | None) -> list[Event]:
    if returned is None:
        return []
    if isinstance(returned, Event):
        return [returned]
    return list(returned)
