"""``motion``: accelerometer samples → windowed features, activity, significant motion.

Each raw event is one sample. Per device, the samples of the open sliding window live in
the state store (:mod:`functions.motion.window`); the first sample at or past a window's
end closes it, and for every closed window with two or more samples the function emits

1. ``device.sensor.accelerometer.windowed``: magnitude mean and variance, dominant
   frequency, mean jerk, axis means (:mod:`functions.motion.features`);
2. ``motion.classification.activity``: still / walking / running / cycling / vehicle /
   unknown with a confidence (rules, :mod:`functions.motion.classify`);
3. ``motion.events.significant``: ``start`` or ``stop`` when the device goes from still
   to moving or back, and ``impact`` when the window's peak magnitude crosses
   ``LOOM_MOTION_IMPACT_THRESHOLD``.

The activity and significant events name the windowed event as what they derive from.
A sample older than the open window is dropped (late), the same reading at the same
instant again is dropped (duplicate); neither changes the state. A reading no device can
make (an axis that is not a finite number, ``|a|`` over 1000 m/s², a timestamp outside
2000-2099) is a :class:`~loom.runtime.invoke.PoisonEvent`.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from functions.motion.classify import MOVING, classify
from functions.motion.features import Features, features
from functions.motion.settings import MotionSettings
from functions.motion.window import Grid, Window, advance, quantize
from loom.catalog import default_catalog
from loom.runtime.context import Context
from loom.runtime.event import Event
from loom.runtime.invoke import PoisonEvent
from loom.runtime.registry import function
from loom.runtime.state import stateful, stateful_parts

__all__ = ["MAX_MAGNITUDE", "handle", "lifespan"]

RAW = "device.sensor.accelerometer.raw"
WINDOWED = "device.sensor.accelerometer.windowed"
ACTIVITY = "motion.classification.activity"
SIGNIFICANT = "motion.events.significant"
MAX_MAGNITUDE = 1000.0  # m/s² (~100 g): beyond any accelerometer a device carries
_EARLIEST_MS = 946_684_800_000  # 2000-01-01: an earlier clock was never set
_LATEST_MS = 4_102_444_800_000  # 2100-01-01
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_VERSIONS = {t: default_catalog()[t].schema_version for t in (WINDOWED, ACTIVITY, SIGNIFICANT)}


lifespan = stateful("motion", MotionSettings)


@function(
    consumes=[RAW],
    produces=[WINDOWED, ACTIVITY, SIGNIFICANT],
    ordered=True,
    lifespan=lifespan,
)
async def handle(event: Event, ctx: Context) -> list[Event]:
    """Windows accelerometer samples per device into features, activities and motion events."""
    store, config = stateful_parts(ctx, MotionSettings)
    data = event.data
    t_ms, xyz = _reading(data)
    grid = Grid(
        window_ms=round(config.motion_window_seconds * 1000),
        hop_ms=round(config.motion_hop_seconds * 1000),
        max_samples=config.motion_max_samples,
        reset_ms=round(config.motion_reset_seconds * 1000),
    )
    device = data["device_id"]
    async with store.transition(device, event.id) as step:
        moved = advance(step.value, t_ms, xyz, grid)
        if moved.dropped or moved.restarted:
            ctx.log.debug("motion.sample", dropped=moved.dropped, restarted=moved.restarted,
                          timestamp=data["timestamp"])  # fmt: skip
        state, made = dict(moved.state), []
        windows = [w for w in moved.closed if len(w.t) >= 2]  # one sample has no features
        for k, window in enumerate(windows):
            outputs, state["moving"] = _outputs(event, ctx, device, window, config,
                                                state.get("moving"), 4 * k)  # fmt: skip
            made.extend(outputs)
        step.value = state
    return made


def _reading(data: dict[str, Any]) -> tuple[int, tuple[int, int, int]]:
    """The sample's time (epoch ms) and stored axes, or PoisonEvent if no device made it."""
    axes = (data["x"], data["y"], data["z"])
    if not all(math.isfinite(v) for v in axes):
        raise PoisonEvent(f"accelerometer axes must be finite numbers, got {axes}")
    magnitude = math.sqrt(sum(v * v for v in axes))
    if magnitude > MAX_MAGNITUDE:
        raise PoisonEvent(
            f"acceleration magnitude {magnitude:.1f} m/s² exceeds {MAX_MAGNITUDE:.0f} m/s² (~100 g)"
        )
    try:
        when = datetime.fromisoformat(str(data["timestamp"]).upper())  # RFC 3339 allows t, z
    except ValueError as exc:
        raise PoisonEvent(f"timestamp {data['timestamp']!r} cannot be read: {exc}") from None
    if when.tzinfo is None:
        raise PoisonEvent(f"timestamp {data['timestamp']!r} has no UTC offset")
    t_ms = round(when.timestamp() * 1000)
    if not _EARLIEST_MS <= t_ms < _LATEST_MS:
        raise PoisonEvent(
            f"timestamp {data['timestamp']!r} is outside 2000-2099: the device clock is not set"
        )
    return t_ms, quantize(*axes)


def _outputs(
    event: Event, ctx: Context, device: str, window: Window, config: MotionSettings,
    moving: bool | None, first: int,
) -> tuple[list[Event], bool | None]:  # fmt: skip
    """The events of one closed window (ids ``first``…), and whether the device now moves."""
    f = features(window, window.end_ms - window.start_ms - round(config.motion_hop_seconds * 1000))
    start, end = _iso(window.start_ms), _iso(window.end_ms)
    span = {"device_id": device, "timestamp": end, "window_start": start, "window_end": end}
    windowed = event.derive(WINDOWED, {
        "schema_version": _VERSIONS[WINDOWED], **span, **_feature_data(f),
    }, source=ctx.source, index=first)  # fmt: skip
    origin = {"type": WINDOWED, "source": ctx.source, "id": windowed.id}
    activity, confidence = classify(f, (window.end_ms - window.start_ms) / 1000)
    made = [windowed, event.derive(ACTIVITY, {
        "schema_version": _VERSIONS[ACTIVITY], **span, "derived_from": origin,
        "activity": activity, "confidence": confidence, "method": "rules",
    }, source=ctx.source, index=first + 1)]  # fmt: skip
    now = moving if activity == "unknown" else activity in MOVING
    significant = {"schema_version": _VERSIONS[SIGNIFICANT], **span, "derived_from": origin,
                   "magnitude": round(f.magnitude_peak, 3)}  # fmt: skip
    if moving is not None and now is not None and now != moving:
        made.append(event.derive(SIGNIFICANT, {**significant, "event": "start" if now else "stop"},
                                 source=ctx.source, index=first + 2))  # fmt: skip
    if f.fresh_peak >= config.motion_impact_threshold:  # only in its last hop: reported once
        made.append(event.derive(SIGNIFICANT, {
            **significant, "event": "impact", "magnitude": round(f.fresh_peak, 3),
            "threshold": config.motion_impact_threshold,
        }, source=ctx.source, index=first + 3))  # fmt: skip
    return made, now


def _feature_data(f: Features) -> dict[str, Any]:
    return {
        "sample_count": f.count,
        "magnitude_mean": round(f.magnitude_mean, 4),
        "magnitude_var": round(f.magnitude_var, 6),
        "dominant_frequency_hz": round(f.dominant_hz, 3),
        "jerk_mean": round(f.jerk_mean, 3),
        "axis_means": {axis: round(v, 4) for axis, v in zip("xyz", f.axis_means, strict=True)},
    }


def _iso(ms: int) -> str:
    return (_EPOCH + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds")[:-6] + "Z"
