"""How often the activity rules are right on synthetic signals with known labels.

Signals come from ``signals.py`` (random orientation, rate jitter, lost samples, per-seed
random cadence, amplitude and noise). The rules' thresholds were set looking at seeds
0-59 at 50 Hz; these tests score seeds 1000-1019, at several sampling rates and window
lengths, through the same code the handler runs (window state → features → rules).

Measured when written (accuracy over all windows covering ≥ half their length; ``unknown``
counts as wrong): 25 Hz/5 s 0.997, 50 Hz/5 s 1.000, 100 Hz/5 s 1.000, 50 Hz/3 s 0.993
over 394-700 windows each (the mistakes: 1 vehicle → cycling at 25 Hz; in 3 s windows
2 cycling → vehicle, 2 cycling → unknown, 1 walking → vehicle).
The floor asserted is 0.95 overall and 0.90 per activity. Synthetic signals are far
cleaner than a phone in a real pocket: this checks the rules do what they say, not how
well they would do on people.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest

from functions.motion.classify import classify
from functions.motion.features import features
from functions.motion.window import Grid, advance, quantize
from tests.functions.motion.signals import ACTIVITIES, synthesize

SEEDS = range(1000, 1020)


def _score(
    rate_hz: float, window_s: float
) -> tuple[float, dict[str, float], Counter[tuple[str, str]]]:
    grid = Grid(round(window_s * 1000), round(window_s * 500), 5000, 300_000)
    confusion: Counter[tuple[str, str]] = Counter()
    for truth in ACTIVITIES:
        for seed in SEEDS:
            signal = synthesize(truth, seed, seconds=max(12.0, 2.5 * window_s), rate_hz=rate_hz)
            state: dict[str, object] = {}
            for t, (x, y, z) in zip(signal.t, signal.xyz, strict=True):
                step = advance(state, round(t * 1000), quantize(x, y, z), grid)
                state = step.state
                for window in step.closed:
                    f = features(window) if len(window.t) >= 2 else None
                    if f is not None and f.span_s >= window_s / 2:
                        confusion[truth, classify(f, window_s)[0]] += 1
    total = sum(confusion.values())
    right = sum(confusion[a, a] for a in ACTIVITIES)
    recall = {
        a: confusion[a, a] / sum(n for (t, _), n in confusion.items() if t == a) for a in ACTIVITIES
    }
    return right / total, recall, confusion


@pytest.mark.parametrize(("rate_hz", "window_s"), [(25, 5), (50, 5), (100, 5), (50, 3)])
def test_activities_of_synthetic_signals_are_classified_right(
    rate_hz: float, window_s: float, record_property: Callable[[str, object], None]
) -> None:
    accuracy, recall, confusion = _score(rate_hz, window_s)
    record_property("accuracy", round(accuracy, 4))
    print(f"\n{rate_hz} Hz, {window_s} s windows: accuracy {accuracy:.3f}, recall {recall}")
    mistakes = {pair: n for pair, n in confusion.items() if pair[0] != pair[1]}
    assert accuracy >= 0.95, f"accuracy {accuracy:.3f}; mistakes (truth, said): {mistakes}"
    assert min(recall.values()) >= 0.90, f"recall {recall}; mistakes: {mistakes}"
