"""The window state on its own: what it keeps, and that it never changes what it was given."""

from __future__ import annotations

import copy

import numpy as np

from functions.motion.window import Grid, advance, quantize

GRID = Grid(window_ms=5000, hop_ms=2500, max_samples=2500, reset_ms=300_000)
T0 = 1_795_594_500_000  # ms, on the grid


def test_readings_are_kept_to_a_hundredth_and_clipped_at_what_16_bits_hold() -> None:
    assert quantize(9.806, -0.004, 1000.0) == (981, 0, 32767)
    state = advance({}, T0, quantize(0.0, 0.0, 9.81), GRID).state
    state = advance(state, T0 + 20, quantize(-400.0, 0.123, 9.81), GRID).state
    (window,) = advance(state, T0 + 2500, quantize(0, 0, 9.81), GRID).closed
    assert window.t.tolist() == [2500, 2520]
    assert np.allclose(window.xyz, [[0, 0, 9.81], [-327.67, 0.12, 9.81]])


def test_two_readings_of_one_instant_are_both_kept_but_a_repeat_is_not() -> None:
    state = advance({}, T0, quantize(0, 0, 9.81), GRID).state
    state = advance(state, T0, quantize(0, 0, 9.9), GRID).state
    step = advance(state, T0, quantize(0, 0, 9.81), GRID)
    assert step.dropped == "duplicate"
    assert len(step.state["s"]) == 24


def test_advancing_never_changes_the_state_it_was_given() -> None:
    state: dict[str, object] = {"moving": True}
    for i in range(400):  # 8 s at 50 Hz, windows closing on the way
        before = copy.deepcopy(state)
        step = advance(state, T0 + 20 * i + (7 if i % 5 == 0 else 0), quantize(0, i % 3, 9.8),
                       GRID)  # fmt: skip
        assert state == before
        state = step.state
    assert state["moving"] is True
