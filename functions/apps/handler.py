"""``apps``: app sessions with durations from one device's lifecycle events, joined with
its screen and lock events so that time with the screen off or locked is not counted.

Per device (state key: ``device_id``), ordered. Each ended session is one
``os.events.app_lifecycle.enriched`` event: ``duration_seconds`` is its wall-clock
length, ``foreground_seconds`` the part of it with the screen on and the device
unlocked. The rules are in :mod:`functions.apps.sessions`.

The event id of a session is derived from the event that opened it, not from the one
that happened to let it end: a replay that interleaves the two input topics otherwise
still makes the same ids, so the store keeps each session once.

Each local day of the device is summed up in one ``os.events.app_usage.daily`` event
(:mod:`functions.apps.daily`), made when the first event of a later local day is
applied. Its id is a UUID5 of (this function's source, device, date): whichever event
closes the day, in whatever interleaving, a replay or after the state was lost, a day
has one id, and the store keeps one summary per device and day (the first made).
Its ``derived_from`` is the event that closed the day.

Dead-lettered (``PoisonEvent``): a timestamp before 2000 (the device's clock was not
set) or more than ``LOOM_APPS_MAX_FUTURE_SECONDS`` after Loom received the event; it
would move the device's timeline and make its real events late. Clamped instead: a
session longer than ``LOOM_APPS_MAX_SESSION_SECONDS`` (it is a missing event, not a bad
one: dead-lettering the event that ends it would lose that event too) and a reported
``duration_seconds`` longer than that.

``device.system.apps.android_usage.raw`` is not consumed: its UsageStats totals cover
periods, not sessions (nothing to attach them to), already leave out screen-off time
(adding them would count it twice), and their ``last_time_used`` is the time the app
came to the front while it is still there, so it cannot end a session either. They are
stored as they are; daily totals compare with them in a query.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from functions.apps.daily import DaySummary
from functions.apps.inputs import APP, SYSTEM, from_micros, to_entry
from functions.apps.sessions import Limits, Session, Timeline
from functions.apps.settings import AppsSettings
from loom.runtime.context import Context
from loom.runtime.event import Event
from loom.runtime.registry import function
from loom.runtime.state import stateful, stateful_parts

__all__ = ["handle", "lifespan"]

ENRICHED = "os.events.app_lifecycle.enriched"
DAILY = "os.events.app_usage.daily"
_NAME_LIMIT = 256  # the enriched schema's maxLength of app_identifier and app_name


lifespan = stateful("apps", AppsSettings)


@function(consumes=[APP, SYSTEM], produces=[ENRICHED, DAILY], ordered=True, lifespan=lifespan)
async def handle(event: Event, ctx: Context) -> list[Event]:
    """App sessions from lifecycle events, without the time the screen was off or locked."""
    store, config = stateful_parts(ctx, AppsSettings)
    entry = to_entry(event, config.apps_max_future_seconds, config.apps_max_session_seconds)
    device = str(event.data["device_id"])
    limits = Limits(reorder=int(config.apps_reorder_seconds * 1_000_000),
                    max_session=int(config.apps_max_session_seconds * 1_000_000),
                    max_buffered=config.apps_max_buffered,
                    resume=config.apps_resume_after_unlock)  # fmt: skip
    async with store.transition(device, event.id) as step:
        timeline = Timeline(step.value, limits)
        ended = timeline.add(entry)
        step.value = timeline.dump()
    if ended is None:
        ctx.log.debug("apps.late", time=event.data["timestamp"], applied_up_to=timeline.done,
                     late=timeline.late)  # fmt: skip
        return []
    return [_event(out, device, ctx.source) if isinstance(out, Session)
            else _day(out, device, ctx.source) for out in ended]  # fmt: skip


def _event(session: Session, device: str, source: str) -> Event:
    kind, opener_source, opener_id = session.opener
    end = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=session.end)
    opener = Event(type=kind, data=None, id=opener_id, source=opener_source, time=end,
                   device_id=device)  # fmt: skip
    app = session.app[:_NAME_LIMIT]
    data: dict[str, Any] = {
        "schema_version": "1.0",
        "device_id": device,
        "timestamp": from_micros(session.end, session.end_offset),
        "app_identifier": app,
        "app_name": session.name[:_NAME_LIMIT] or app,
        "session_start": from_micros(session.start, session.start_offset),
        "session_end": from_micros(session.end, session.end_offset),
        "duration_seconds": round((session.end - session.start) / 1_000_000, 3),
        "foreground_seconds": round(session.foreground / 1_000_000, 3),
        "launch_count": session.launches,
        "ended_by": session.ended_by,
    }
    return opener.derive(ENRICHED, data, source=source)


def _day(day: DaySummary, device: str, source: str) -> Event:
    """The day's summary; its id depends on the device and date only (see above)."""
    data = day.payload()
    for app in data["apps"]:
        app["app_identifier"] = app["app_identifier"][:_NAME_LIMIT]
        app["app_name"] = app["app_name"][:_NAME_LIMIT] or app["app_identifier"]
    kind, closer_source, closer_id = day.closer
    end = datetime.fromisoformat(data["timestamp"])
    anchor = Event(type=DAILY, data=None, id=f"{device}|{day.date}", source=source, time=end,
                   device_id=device)  # fmt: skip
    payload: dict[str, Any] = {
        "schema_version": "1.0",
        "device_id": device,
        **data,
        "derived_from": {"type": kind, "source": closer_source, "id": closer_id},
    }
    return anchor.derive(DAILY, payload, source=source)
