"""Features of one closed window: magnitude statistics, jerk, and the dominant frequency.

The magnitude ``|a|`` (gravity included) does not depend on how the device is held, so
everything but the axis means is computed on it. Devices do not sample evenly (jitter,
dropped readings), so the magnitude is interpolated onto an even grid at the window's
own mean rate before the FFT (Hann window, zero-padded 4x: ~0.05 Hz steps at 5 s).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from functions.motion.window import Window

__all__ = ["MIN_FREQUENCY_HZ", "Features", "features"]

MIN_FREQUENCY_HZ = 0.3  # slower than this is drift or posture, not motion
_PEAK_HALF_WIDTH_HZ = 0.4  # the main lobe of a Hann window over 5 s is ±0.4 Hz
_VIBRATION_HZ = 5.0  # faster than any gait or pedalling: machines and roads
_MAX_RATE_HZ = 200.0  # faster devices are interpolated down to this for the FFT


@dataclass(frozen=True)
class Features:
    count: int
    span_s: float  # first to last sample
    rate_hz: float  # mean sampling rate, from the timestamps
    magnitude_mean: float  # m/s²
    magnitude_var: float  # (m/s²)²
    magnitude_peak: float  # m/s²
    fresh_peak: float  # m/s², of the samples no earlier window held (0 if none)
    dominant_hz: float  # 0 when the magnitude does not change or the window is too short
    periodicity: float  # share of the spectrum's power within ±0.4 Hz of the dominant peak
    vibration: float  # share of the spectrum's power above 5 Hz (engines, roads; not bodies)
    jerk_mean: float  # m/s³
    axis_means: tuple[float, float, float]  # m/s²

    @property
    def magnitude_std(self) -> float:
        return float(np.sqrt(self.magnitude_var))


def features(window: Window, fresh_from_ms: int = 0) -> Features:
    """The features of ``window`` (at least two samples); ``fresh_from_ms``: the offset from
    its start after which samples are new to this window (its last hop)."""
    t = window.t / 1000.0  # seconds from the window's start
    a = window.xyz
    m = np.sqrt(np.einsum("ij,ij->i", a, a))
    span = float(t[-1] - t[0])
    rate = (len(t) - 1) / span if span > 0 else 0.0
    dt = np.diff(t)
    steps = dt > 0  # readings of one instant (distinct values, same timestamp) have no jerk
    jerk = np.sqrt((np.diff(a, axis=0)[steps] ** 2).sum(axis=1)) / dt[steps]
    dominant, periodicity, vibration = _spectrum(t, m, rate)
    means = a.mean(axis=0)
    fresh = window.t >= fresh_from_ms
    return Features(
        count=len(t),
        span_s=span,
        rate_hz=rate,
        magnitude_mean=float(m.mean()),
        magnitude_var=float(m.var()),
        magnitude_peak=float(m.max()),
        fresh_peak=float(m[fresh].max()) if fresh.any() else 0.0,
        dominant_hz=dominant,
        periodicity=periodicity,
        vibration=vibration,
        jerk_mean=float(jerk.mean()) if jerk.size else 0.0,
        axis_means=(float(means[0]), float(means[1]), float(means[2])),
    )


def _spectrum(t: np.ndarray, m: np.ndarray, rate: float) -> tuple[float, float, float]:
    """The strongest frequency of ``m`` above :data:`MIN_FREQUENCY_HZ`, its share of the
    power there, and the share above 5 Hz; zeros for too few samples or a flat signal."""
    if len(t) < 8 or rate <= 2 * MIN_FREQUENCY_HZ or float(m.var()) == 0.0:
        return 0.0, 0.0, 0.0
    rate = min(rate, _MAX_RATE_HZ)
    n = int((t[-1] - t[0]) * rate) + 1
    even = np.interp(t[0] + np.arange(n) / rate, t, m)
    even = (even - even.mean()) * np.hanning(n)
    size = 1 << max(8, (4 * n - 1).bit_length())
    power = np.abs(np.fft.rfft(even, size)) ** 2
    freqs = np.fft.rfftfreq(size, 1.0 / rate)
    band = freqs >= MIN_FREQUENCY_HZ
    total = float(power[band].sum())
    if total <= 0.0:
        return 0.0, 0.0, 0.0
    peak = int(np.argmax(np.where(band, power, -1.0)))
    near = band & (np.abs(freqs - freqs[peak]) <= _PEAK_HALF_WIDTH_HZ)
    fast = float(power[freqs >= _VIBRATION_HZ].sum())
    return float(freqs[peak]), float(power[near].sum()) / total, fast / total
