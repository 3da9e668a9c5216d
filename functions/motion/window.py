"""One device's sliding window of accelerometer samples, kept as a small JSON state.

Windows lie on a grid: they end at whole multiples of the hop (epoch milliseconds) and
are ``window`` long, so the same samples make the same windows on any host and after a
replay. Only the open window is kept. A sample at or past the window's end closes it (and
any later window that still holds samples); the closed windows are returned for
features, and the samples of the next window move down.

The samples are one base64 string of 9-byte records, in time order: the time as a 24-bit
millisecond offset from the window's start, then x, y, z as 16-bit integers of
0.01 m/s² (a reading beyond ±327 m/s², 33 g, past what phone sensors measure, is kept
as ±327). Nine bytes are exactly twelve base64 characters, so adding a sample is
appending twelve characters: nothing is decoded but the last record. A full 5 s window at
50 Hz is a 3,000-character string; as a JSON array of numbers it was 4,900 bytes and cost
PostgreSQL twice as much per write (JSONB parses every number).

:func:`advance` never changes the state it is given (the state store keeps it as the
state *before* the event, for a redelivery); it returns a new one.
"""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

__all__ = ["FORMAT", "UNIT", "Grid", "Step", "Window", "advance", "quantize"]

FORMAT = 2  # of the state below; a state of another format (or grid) starts again
UNIT = 0.01  # m/s² per step of a stored axis
_CHARS = 12  # base64 characters of one 9-byte record
_AXIS = struct.Struct("<3h")
_RECORD = np.dtype([("t", "<u2"), ("t_high", "u1"), ("xyz", "<i2", (3,))])

Dropped = Literal["late", "duplicate", "full"]


@dataclass(frozen=True)
class Grid:
    """Where windows lie, in milliseconds, and how much one may hold."""

    window_ms: int
    hop_ms: int
    max_samples: int
    reset_ms: int


@dataclass(frozen=True)
class Window:
    """A closed window ``[start_ms, end_ms)``: sample offsets from its start (ms, ints) and
    their axes in m/s² (n by 3 floats), in time order."""

    start_ms: int
    end_ms: int
    t: np.ndarray
    xyz: np.ndarray


@dataclass(frozen=True)
class Step:
    """What one sample did: the new state, the windows it closed, why it was dropped."""

    state: dict[str, Any]
    closed: list[Window]
    dropped: Dropped | None = None
    restarted: bool = False


def quantize(x: float, y: float, z: float) -> tuple[int, int, int]:
    """Axes in m/s² as the stored 0.01 m/s² steps, clipped to what 16 bits hold."""
    return (_step(x), _step(y), _step(z))


def advance(state: dict[str, Any], t_ms: int, xyz: tuple[int, int, int], grid: Grid) -> Step:
    """Add the sample taken at ``t_ms`` (epoch ms) with axes ``xyz`` (:func:`quantize`)."""
    if (state.get("v"), state.get("w"), state.get("h")) != (FORMAT, grid.window_ms, grid.hop_ms):
        return Step(_fresh(state, t_ms, xyz, grid), [], restarted=bool(state))
    end: int = state["end"]
    start = end - grid.window_ms
    if t_ms < start:
        if start - t_ms > grid.reset_ms:  # the clock went back, or history is replayed
            return Step(_fresh(state, t_ms, xyz, grid), [], restarted=True)
        return Step(state, [], "late")
    samples: str = state["s"]
    closed: list[Window] = []
    while t_ms >= end:
        if samples:
            closed.append(_window(end - grid.window_ms, end, samples))
        samples = _shift(samples, grid.hop_ms)  # what lies in the next window, moved down
        end += grid.hop_ms
        if not samples:  # nothing left to carry: jump to the window the sample falls in
            end = _end_of(t_ms, grid)
    record = _record(t_ms - (end - grid.window_ms), xyz)
    at, duplicate = _place(samples, record)
    dropped: Dropped | None = None
    if duplicate:
        dropped = "duplicate"
    elif len(samples) // _CHARS >= grid.max_samples:
        dropped = "full"
    else:
        samples = samples[:at] + record + samples[at:]
    if dropped and not closed:
        return Step(state, [], dropped)
    return Step({**state, "end": end, "s": samples}, closed, dropped)


def _step(v: float) -> int:
    return max(-32767, min(32767, round(v / UNIT)))


def _record(offset: int, xyz: tuple[int, int, int]) -> str:
    return base64.b64encode(offset.to_bytes(3, "little") + _AXIS.pack(*xyz)).decode()


def _offset(samples: str, i: int) -> int:
    """The time offset of record ``i`` (decodes only its first four characters)."""
    return int.from_bytes(base64.b64decode(samples[i * _CHARS : i * _CHARS + 4]), "little")


def _place(samples: str, record: str) -> tuple[int, bool]:
    """Where ``record`` goes (a character index: after those not later), and whether the
    same reading at the same instant is there already. Appending is the common case."""
    offset = _offset(record, 0)
    n = len(samples) // _CHARS
    lo, hi = 0, n
    if n and _offset(samples, n - 1) <= offset:
        lo = n - 1
    while lo < hi:  # the first record later than ``offset``
        mid = (lo + hi) // 2
        if _offset(samples, mid) <= offset:
            lo = mid + 1
        else:
            hi = mid
    j = lo - 1
    while j >= 0 and _offset(samples, j) == offset:
        if samples[j * _CHARS : (j + 1) * _CHARS] == record:
            return lo * _CHARS, True
        j -= 1
    return lo * _CHARS, False


def _decode(samples: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(samples), dtype=_RECORD)


def _window(start_ms: int, end_ms: int, samples: str) -> Window:
    records = _decode(samples)
    t = records["t"].astype(np.int64) + (records["t_high"].astype(np.int64) << 16)
    return Window(start_ms, end_ms, t, records["xyz"].astype(np.float64) * UNIT)


def _shift(samples: str, hop_ms: int) -> str:
    """The records at or after ``hop_ms``, their offsets lowered by it."""
    records = _decode(samples)
    t = records["t"].astype(np.int64) + (records["t_high"].astype(np.int64) << 16)
    kept = records[t >= hop_ms].copy()
    moved = t[t >= hop_ms] - hop_ms
    kept["t"], kept["t_high"] = moved & 0xFFFF, moved >> 16
    return base64.b64encode(kept.tobytes()).decode()


def _end_of(t_ms: int, grid: Grid) -> int:
    """The end of the first window on the grid that ``t_ms`` falls in, as the newest sample."""
    return (t_ms // grid.hop_ms + 1) * grid.hop_ms


def _fresh(
    state: dict[str, Any], t_ms: int, xyz: tuple[int, int, int], grid: Grid
) -> dict[str, Any]:
    end = _end_of(t_ms, grid)
    return {
        **{k: v for k, v in state.items() if k == "moving"},  # what was learnt, not the samples
        "v": FORMAT, "w": grid.window_ms, "h": grid.hop_ms, "end": end,
        "s": _record(t_ms - (end - grid.window_ms), xyz),
    }  # fmt: skip
