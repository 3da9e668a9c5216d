"""Activity of one window from its features: hand-written rules with soft edges.

Each activity is a product of soft ranges ("about 1.5 to 2.4 Hz") on four features of the
magnitude ``|a|``: how much it varies (std), its rhythm (dominant frequency), how much of
its power that rhythm holds (periodicity), and how much lies above 5 Hz (vibration):

============  =========  =============  ===========  ===============================
activity      std m/s²   rhythm Hz      periodicity  other
============  =========  =============  ===========  ===============================
still         < 0.1      -              -            -
walking       0.7-3.2    1.5-2.45       > 0.6        -
running       > 3        2.35-4         > 0.6        -
cycling       0.2-2      0.8-1.55       > 0.8        vibration < 0.05 (smooth)
vehicle       0.1-1.5    -              < 0.7        *or* vibration > 0.05
============  =========  =============  ===========  ===============================

The best score wins if it is at least 0.25 (else ``unknown``); its confidence is the
score times its share of all scores, so a close second lowers it. Fewer than 4 samples or
less than half the window covered give ``unknown``; fewer than 8 samples or a rate too
slow to see a running rhythm (8 Hz) give ``still`` or ``unknown``, never a guess. The
ranges were set on the synthetic signals of the tests (``tests/functions/motion/signals.py``),
which the test suite scores.
"""

from __future__ import annotations

import math

from functions.motion.features import Features

__all__ = ["MIN_COVERAGE", "MIN_RATE_HZ", "MIN_SAMPLES", "MOVING", "classify"]

MIN_SAMPLES = 8  # fewer in a window: still or unknown (too few for a rhythm)
_MIN_STILL_SAMPLES = 4  # fewer: unknown
MIN_COVERAGE = 0.5  # share of the window the samples must span (a device starting, a gap)
MIN_RATE_HZ = 8.0  # below this a running rhythm (≤ 4 Hz) cannot be seen; only still can
MOVING = frozenset({"walking", "running", "cycling", "vehicle"})
_MIN_SCORE = 0.25


def classify(f: Features, window_s: float) -> tuple[str, float]:
    """The activity of a window of ``window_s`` seconds with features ``f``, and confidence."""
    if f.count < _MIN_STILL_SAMPLES or f.span_s < MIN_COVERAGE * window_s:
        return "unknown", 0.0
    std = f.magnitude_std
    still = _below(std, 0.1, 0.02)
    if f.rate_hz < MIN_RATE_HZ or f.count < MIN_SAMPLES:
        return ("still", round(still, 3)) if still >= 0.5 else ("unknown", 0.0)
    moving = 1.0 - still
    rhythmic = _above(f.periodicity, 0.6, 0.05)
    scores = {
        "still": still,
        "walking": moving * rhythmic * _between(f.dominant_hz, 1.5, 2.45, 0.05)
        * _between(std, 0.7, 3.2, 0.15),
        "running": moving * rhythmic * _between(f.dominant_hz, 2.35, 4.0, 0.05)
        * _above(std, 3.0, 0.25),
        "cycling": moving * _above(f.periodicity, 0.8, 0.04) * _below(f.vibration, 0.05, 0.01)
        * _between(f.dominant_hz, 0.8, 1.55, 0.05) * _between(std, 0.2, 2.0, 0.1),
        "vehicle": moving * _between(std, 0.1, 1.5, 0.1)
        * _either(_below(f.periodicity, 0.7, 0.05), _above(f.vibration, 0.05, 0.01)),
    }  # fmt: skip
    best = max(scores, key=scores.__getitem__)
    score = scores[best]
    if score < _MIN_SCORE:
        return "unknown", round(1.0 - score, 3)
    return best, round(score * score / sum(scores.values()), 3)


def _above(value: float, edge: float, width: float) -> float:
    """Near 1 well above ``edge``, 0.5 at it, near 0 well below; ``width`` sets the slope."""
    z = (value - edge) / width
    return 1.0 / (1.0 + math.exp(-z)) if z > -50 else 0.0


def _below(value: float, edge: float, width: float) -> float:
    return 1.0 - _above(value, edge, width)


def _between(value: float, low: float, high: float, width: float) -> float:
    return _above(value, low, width) * _below(value, high, width)


def _either(a: float, b: float) -> float:
    return 1.0 - (1.0 - a) * (1.0 - b)
