"""Silero VAD in numpy, with the weights of the wheel's ONNX sequence model.

The network is small (an STFT as a convolution, four 1-D convolutions, one LSTM cell and
a 1x1 convolution per 32 ms frame); onnxruntime runs its convolutions one frame at a
time, which leaves most of a CPU's matrix throughput unused. Here every frame of every
stream in a batch goes through the convolutions as one matrix product per layer, and
only the LSTM steps frame by frame, all streams of the batch at once. The probabilities
match onnxruntime's to ~1e-6 (tests/functions/vad/test_backends.py).

The weights are read from the ONNX file with a minimal protobuf reader (the ``onnx``
package is not needed): the graph's initializers, and the LSTM node's inputs.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from functions.vad.silero import CONTEXT, FRAME, Request, model_file, ragged, unpack
from loom.errors import ConfigError

__all__ = ["NumpyBackend", "onnx_weights"]

_BLOCK = 1024  # frames through the convolutions at once: bounds the scratch memory


def _varint(buf: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[at]
        value |= (byte & 0x7F) << shift
        at += 1
        if byte < 0x80:
            return value, at
        shift += 7


def _fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) of a protobuf message, in order."""
    at = 0
    while at < len(buf):
        key, at = _varint(buf, at)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, at = _varint(buf, at)
            yield number, wire, value
        elif wire == 2:
            size, at = _varint(buf, at)
            yield number, wire, buf[at : at + size]
            at += size
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            yield number, wire, buf[at : at + width]
            at += width
        else:
            raise ConfigError(f"unexpected protobuf wire type {wire} in the ONNX model")


def _tensor(buf: bytes) -> tuple[str, np.ndarray]:
    dims: list[int] = []
    name, raw, kind, floats = "", b"", 1, b""
    for number, wire, value in _fields(buf):
        if number == 1:  # dims: packed or not
            if isinstance(value, bytes):
                at = 0
                while at < len(value):
                    dim, at = _varint(value, at)
                    dims.append(dim)
            else:
                dims.append(value)
        elif number == 2 and isinstance(value, int):
            kind = value
        elif number == 8 and isinstance(value, bytes):
            name = value.decode()
        elif number == 9 and isinstance(value, bytes):
            raw = value
        elif number == 4 and wire == 2 and isinstance(value, bytes):
            floats = value
    if kind != 1:  # FLOAT
        raise ConfigError(f"ONNX initializer {name!r} is not float32")
    data = np.frombuffer(raw or floats, dtype="<f4").astype(np.float32)
    return name, data.reshape(dims)


def onnx_weights(path: Path) -> tuple[dict[str, np.ndarray], list[str]]:
    """The initializers of the ONNX model at ``path``, and the inputs of its LSTM node."""
    model = path.read_bytes()
    graph = next(v for n, _, v in _fields(model) if n == 7 and isinstance(v, bytes))
    weights: dict[str, np.ndarray] = {}
    lstm: list[str] = []
    for number, _, value in _fields(graph):
        if number == 5 and isinstance(value, bytes):
            name, array = _tensor(value)
            weights[name] = array
        elif number == 1 and isinstance(value, bytes):
            parts = list(_fields(value))
            if any(n == 4 and v == b"LSTM" for n, _, v in parts):
                lstm = [v.decode() for n, _, v in parts if n == 1 and isinstance(v, bytes)]
    return weights, lstm


def _im2col(w: np.ndarray) -> np.ndarray:
    """Conv1d weight (out, in, k) as a matrix for (k * in) taps."""
    return np.ascontiguousarray(w.transpose(2, 1, 0).reshape(-1, w.shape[0]))


class NumpyBackend:
    name = "numpy"

    def __init__(self, threads: int = 1) -> None:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError as exc:
            raise ConfigError("LOOM_VAD_BACKEND=numpy needs threadpoolctl installed") from exc
        # BLAS threads on the LSTM's small products cost more than they win: as many as
        # LOOM_VAD_THREADS, for the whole process (what limits them is process-wide)
        threadpool_limits(limits=threads, user_api="blas")
        weights, lstm = onnx_weights(model_file("silero_vad_16k_sequence.onnx"))
        try:
            self.stft = np.ascontiguousarray(weights["stft.forward_basis_buffer"][:, 0, :].T)
            self.w1, self.b1 = _im2col(weights["encoder.0.weight"]), weights["encoder.0.bias"]
            self.w2, self.b2 = _im2col(weights["encoder.1.weight"]), weights["encoder.1.bias"]
            self.w3, self.b3 = _im2col(weights["encoder.2.weight"]), weights["encoder.2.bias"]
            # conv4 sees one time step between zero pads: only its middle tap counts
            self.w4 = np.ascontiguousarray(weights["encoder.3.weight"][:, :, 1].T)
            self.b4 = weights["encoder.3.bias"]
            w, r, b = (weights[name][0] for name in lstm[1:4])
        except (KeyError, ValueError, IndexError) as exc:
            raise ConfigError(
                f"the silero-vad ONNX model has an unexpected layout: {exc}"
            ) from None
        # ONNX orders the LSTM gates i, o, f, c; reorder to i, f, c, o
        order = np.concatenate([np.arange(0, 128), np.arange(256, 384), np.arange(384, 512),
                                np.arange(128, 256)])  # fmt: skip
        self.wih = np.ascontiguousarray(w[order].T)
        self.whh = np.ascontiguousarray(r[order].T)
        self.bias = (b[:512] + b[512:])[order]
        self.wout = weights["output.weight"][0, :, 0].copy()
        self.bout = float(weights["output.bias"][0])

    def _gates(self, frames: np.ndarray) -> np.ndarray:
        """The LSTM's input projection of each frame (M, 576) -> (M, 512)."""
        m = len(frames)
        padded = np.empty((m, CONTEXT + FRAME + 64), np.float32)
        padded[:, : CONTEXT + FRAME] = frames
        padded[:, CONTEXT + FRAME :] = frames[:, -2:-66:-1]  # reflect, as the model pads
        windows = np.lib.stride_tricks.as_strided(
            padded, (m, 4, 256), (padded.strides[0], 128 * 4, 4), writeable=False
        ).reshape(m * 4, 256)
        spectrum = windows @ self.stft
        magnitude = np.sqrt(spectrum[:, :129] ** 2 + spectrum[:, 129:] ** 2).reshape(m, 4, 129)
        x = np.zeros((m, 6, 129), np.float32)
        x[:, 1:5] = magnitude
        taps = np.concatenate([x[:, 0:4], x[:, 1:5], x[:, 2:6]], axis=2).reshape(m * 4, 387)
        c1 = np.maximum(taps @ self.w1 + self.b1, 0).reshape(m, 4, 128)
        y = np.zeros((m, 5, 128), np.float32)  # stride 2: steps at -1..1 and 1..3
        y[:, 1:5] = c1
        taps = np.concatenate([y[:, 0:3].reshape(m, 1, 384), y[:, 2:5].reshape(m, 1, 384)],
                              axis=1).reshape(m * 2, 384)  # fmt: skip
        c2 = np.maximum(taps @ self.w2 + self.b2, 0).reshape(m, 128)  # (m, 2 x 64)
        taps = np.concatenate([np.zeros((m, 64), np.float32), c2], axis=1)
        c3 = np.maximum(taps @ self.w3 + self.b3, 0)
        c4 = np.maximum(c3 @ self.w4 + self.b4, 0)
        gates: np.ndarray = c4 @ self.wih + self.bias
        return gates

    def run(self, requests: Sequence[Request]) -> list[Request]:
        order, packed, states, active = ragged(requests)
        steps, width = packed.shape[:2]
        gates = np.empty((steps, width, 512), np.float32)
        flat = packed.reshape(steps * width, CONTEXT + FRAME)
        into = gates.reshape(steps * width, 512)
        for at in range(0, len(flat), _BLOCK):
            into[at : at + _BLOCK] = self._gates(flat[at : at + _BLOCK])
        h, c = states[0].copy(), states[1].copy()
        hidden = np.zeros((steps, width, 128), np.float32)
        for t, n in enumerate(active):
            g = gates[t, :n] + h[:n] @ self.whh
            i = 1 / (1 + np.exp(-g[:, :128]))
            f = 1 / (1 + np.exp(-g[:, 128:256]))
            o = 1 / (1 + np.exp(-g[:, 384:]))
            c[:n] = f * c[:n] + i * np.tanh(g[:, 256:384])
            h[:n] = o * np.tanh(c[:n])
            hidden[t, :n] = h[:n]
        probs = 1 / (1 + np.exp(-(np.maximum(hidden, 0) @ self.wout + self.bout)))
        return unpack(order, probs.astype(np.float32), np.stack([h, c]), requests)
