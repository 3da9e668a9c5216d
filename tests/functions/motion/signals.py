"""Synthetic accelerometer signals with known activities, for the motion tests and bench.

Each signal is what a phone held at a random orientation would read (gravity included,
m/s², device axes): gravity plus the body's acceleration, rotated into the device
frame, plus sensor noise, sampled with timing jitter and a few dropped readings.

- still: sensor noise; half the time held in a hand (tremor 8-12 Hz, slow sway).
- walking: steps at 1.6-2.3 Hz, 1.5-3 m/s² vertically, a second harmonic (heel
  strike), sideways sway at half the step rate.
- running: steps at 2.5-3.2 Hz, 5-9 m/s² vertically, harmonics and more noise.
- cycling: a smooth pedalling rhythm at 1.0-1.5 Hz, 0.5-1.5 m/s², little harmonic
  content, the device rocking slowly with the leg.
- vehicle: band-limited low-frequency sway and bumps (0.1-2 Hz), road and engine
  vibration (8-20 Hz), sensor noise; no rhythm.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ACTIVITIES", "GRAVITY", "Signal", "synthesize"]

ACTIVITIES = ("still", "walking", "running", "cycling", "vehicle")
GRAVITY = 9.81


@dataclass(frozen=True)
class Signal:
    activity: str
    t: np.ndarray  # seconds since the epoch
    xyz: np.ndarray  # (n, 3) m/s², device frame


def synthesize(
    activity: str, seed: int, *, seconds: float = 10.0, rate_hz: float = 50.0,
    start: float = 1_795_594_500.0, exact: bool = False,
) -> Signal:  # fmt: skip
    """``seconds`` of ``activity`` at about ``rate_hz``, the same for the same ``seed``;
    ``exact``: every sample, evenly spaced from ``start`` (no jitter, none lost)."""
    rng = np.random.default_rng([seed, ACTIVITIES.index(activity)])
    n = int(seconds * rate_hz)
    t = np.arange(n) / rate_hz
    body = _BODY[activity](rng, t, rate_hz)  # (n, 3) world frame, z up
    world = body + np.array([0.0, 0.0, GRAVITY])
    device = np.einsum("ij,nj->ni", _random_rotation(rng).T, world)
    if activity == "cycling":  # the phone in a pocket rocks with the thigh
        device = _rock(device, t, rng)
    noise = {"still": 0.02, "walking": 0.15, "running": 0.35, "cycling": 0.06, "vehicle": 0.06}
    device += rng.normal(0, noise[activity] * rng.uniform(0.3, 1.5), device.shape)
    if exact:
        return Signal(activity, start + t, device)
    jitter = rng.normal(0, 0.002, n).clip(-0.4 / rate_hz, 0.4 / rate_hz)
    kept = rng.random(n) > 0.02  # a few readings are lost
    return Signal(activity, start + rng.uniform(0, 3) + (t + jitter)[kept], device[kept])


def _still(rng: np.random.Generator, t: np.ndarray, rate: float) -> np.ndarray:
    out = np.zeros((len(t), 3))
    if rng.random() < 0.5:  # held in a hand
        for axis in range(3):
            out[:, axis] += rng.uniform(0.01, 0.05) * np.sin(
                2 * np.pi * rng.uniform(8, 12) * t + rng.uniform(0, 2 * np.pi)
            ) + rng.uniform(0.01, 0.04) * np.sin(
                2 * np.pi * rng.uniform(0.1, 0.4) * t + rng.uniform(0, 2 * np.pi)
            )  # fmt: skip
    return out


def _gait(rng: np.random.Generator, t: np.ndarray, f: float, a1: float, sway: float) -> np.ndarray:
    """Vertical bounce at the step rate ``f`` (drifting a little) with a heel-strike
    harmonic, forward surge at ``f``, sideways sway at ``f/2``."""
    drift = 1 + 0.03 * np.sin(2 * np.pi * rng.uniform(0.05, 0.2) * t + rng.uniform(0, 6.3))
    phase = 2 * np.pi * f * np.cumsum(drift) * (t[1] - t[0]) + rng.uniform(0, 2 * np.pi)
    a2 = a1 * rng.uniform(0.2, 0.6)
    out = np.zeros((len(t), 3))
    out[:, 2] = a1 * np.sin(phase) + a2 * np.sin(2 * phase + rng.uniform(0, 2 * np.pi))
    out[:, 0] = sway * rng.uniform(0.4, 1.0) * np.sin(phase + rng.uniform(0, 2 * np.pi))
    out[:, 1] = sway * np.sin(phase / 2 + rng.uniform(0, 2 * np.pi))
    return out


def _walking(rng: np.random.Generator, t: np.ndarray, rate: float) -> np.ndarray:
    return _gait(rng, t, rng.uniform(1.6, 2.3), rng.uniform(1.5, 3.0), rng.uniform(0.3, 0.8))


def _running(rng: np.random.Generator, t: np.ndarray, rate: float) -> np.ndarray:
    return _gait(rng, t, rng.uniform(2.5, 3.2), rng.uniform(5.0, 9.0), rng.uniform(0.8, 2.0))


def _cycling(rng: np.random.Generator, t: np.ndarray, rate: float) -> np.ndarray:
    f = rng.uniform(1.0, 1.5)
    phase = 2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)
    a1 = rng.uniform(0.5, 1.5)
    out = np.zeros((len(t), 3))
    out[:, 2] = a1 * np.sin(phase) + a1 * rng.uniform(0, 0.2) * np.sin(2 * phase)
    out[:, 0] = a1 * rng.uniform(0.1, 0.4) * np.sin(phase + rng.uniform(0, 2 * np.pi))
    return out


def _vehicle(rng: np.random.Generator, t: np.ndarray, rate: float) -> np.ndarray:
    out = np.zeros((len(t), 3))
    for axis, scale in ((0, 0.6), (1, 0.8), (2, 1.0)):
        out[:, axis] = scale * (
            _band_noise(rng, len(t), rate, 0.1, 2.0, rng.uniform(0.15, 0.5))
            + _band_noise(rng, len(t), rate, 8.0, 20.0, rng.uniform(0.1, 0.4))
        )
    return out


_BODY = {"still": _still, "walking": _walking, "running": _running, "cycling": _cycling,
         "vehicle": _vehicle}  # fmt: skip


def _band_noise(rng: np.random.Generator, n: int, rate: float, lo: float, hi: float,
                std: float) -> np.ndarray:  # fmt: skip
    """Gaussian noise with its power between ``lo`` and ``hi`` Hz (below Nyquist), of ``std``."""
    spectrum = np.fft.rfft(rng.normal(0, 1, n))
    freqs = np.fft.rfftfreq(n, 1 / rate)
    spectrum[(freqs < lo) | (freqs > min(hi, rate / 2))] = 0
    out = np.fft.irfft(spectrum, n)
    sd = float(out.std())
    return out * (std / sd) if sd > 0 else out


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q = rng.normal(0, 1, 4)
    w, x, y, z = q / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])  # fmt: skip


def _rock(device: np.ndarray, t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rotate each reading about the device's x axis by a slow ±20° rocking angle."""
    angle = np.radians(20) * np.sin(2 * np.pi * rng.uniform(0.2, 0.5) * t)
    c, s = np.cos(angle), np.sin(angle)
    out = device.copy()
    out[:, 1] = c * device[:, 1] - s * device[:, 2]
    out[:, 2] = s * device[:, 1] + c * device[:, 2]
    return out
