"""Silero VAD from the files of the ``silero-vad`` wheel, without importing its package
(whose ``__init__`` imports torch).

A model call takes, for each of several streams, some whole 32 ms frames (512 samples at
16 kHz, each led by the 64 samples before it) and the stream's recurrent state (2 x 128
floats: LSTM h and c), and gives a speech probability per frame and the new state.

- ``onnx`` (onnxruntime): one stream is one call of the sequence model (all its frames
  at once); several are stepped together, frame by frame, through the streaming model
  with a batch dimension — whichever is faster for the batch at hand (``bench/vad.py``).
- ``numpy``: the same weights in numpy (``numpy_silero``), every frame of a batch through
  the convolutions at once.
- ``torch``: the TorchScript model, stepped frame by frame with a batch dimension.

All are the same network and weights: their probabilities agree to ~1e-5.
"""

from __future__ import annotations

import importlib.metadata
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from loom.errors import ConfigError

__all__ = [
    "CONTEXT",
    "FRAME",
    "Request",
    "SileroBackend",
    "load_backend",
    "model_file",
    "ragged",
    "silero_version",
    "unpack",
]

FRAME, CONTEXT = 512, 64  # samples at 16 kHz
DISTRIBUTION = "silero-vad"
Request = tuple[np.ndarray, np.ndarray]  # frames (T, 576) float32, state (2, 128) float32


class SileroBackend(Protocol):
    name: str

    def run(self, requests: Sequence[Request]) -> list[Request]:
        """Per request: (probabilities (T,), new state (2, 128))."""
        ...


def silero_version() -> str:
    return importlib.metadata.version(DISTRIBUTION)


def model_file(name: str) -> Path:
    """``silero_vad/data/<name>`` of the installed wheel, found through its file list."""
    try:
        files = importlib.metadata.files(DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        raise ConfigError(
            "vad needs the silero-vad package (its model files): `uv sync` installs it"
        ) from None
    for file in files:
        if file.as_posix() == f"silero_vad/data/{name}":
            return Path(str(file.locate()))
    raise ConfigError(f"silero-vad {silero_version()} has no model file data/{name}")


def load_backend(name: str, threads: int = 1) -> SileroBackend:
    if name == "onnx":
        return OnnxBackend(threads)
    if name == "torch":
        return TorchBackend(threads)
    if name == "numpy":
        from functions.vad.numpy_silero import NumpyBackend

        return NumpyBackend(threads)
    raise ConfigError(f"unknown vad backend {name!r} (onnx, numpy or torch)")


def ragged(requests: Sequence[Request]) -> tuple[list[int], np.ndarray, np.ndarray, list[int]]:
    """Requests longest first, packed (T, B, 576) so that the streams still running at
    step t are the first ``active[t]``; and the initial states (2, B, 128)."""
    order = sorted(range(len(requests)), key=lambda i: -len(requests[i][0]))
    lengths = [len(requests[i][0]) for i in order]
    packed = np.zeros((lengths[0] if lengths else 0, len(order), CONTEXT + FRAME), np.float32)
    states = np.zeros((2, len(order), 128), np.float32)
    for column, i in enumerate(order):
        packed[: lengths[column], column] = requests[i][0]
        states[:, column] = requests[i][1]
    active = [sum(1 for n in lengths if n > t) for t in range(packed.shape[0])]
    return order, packed, states, active


def unpack(order: list[int], probs: np.ndarray, states: np.ndarray,
            requests: Sequence[Request]) -> list[Request]:  # fmt: skip
    out: list[Request] = [(np.zeros(0, np.float32), np.zeros((2, 128), np.float32))] * len(order)
    for column, i in enumerate(order):
        length = len(requests[i][0])
        out[i] = (probs[:length, column].copy(), states[:, column].copy())
    return out


class OnnxBackend:
    name = "onnx"
    # From this many streams on, stepping them together beats one sequence call each;
    # below, it is slower (per-frame calls cost more than they share). bench/vad.py.
    batch_from = 32

    def __init__(self, threads: int = 1) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise ConfigError("LOOM_VAD_BACKEND=onnx needs onnxruntime installed") from exc
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # the op18 export names unused initializers: noise
        provider = ["CPUExecutionProvider"]
        self.sequence = ort.InferenceSession(
            str(model_file("silero_vad_16k_sequence.onnx")), options, providers=provider
        )
        self.streaming = ort.InferenceSession(
            str(model_file("silero_vad_op18_ifless.onnx")), options, providers=provider
        )
        self._rate = np.array(16_000, dtype=np.int64)

    def run(self, requests: Sequence[Request]) -> list[Request]:
        if len(requests) < self.batch_from:
            return [self.one(frames, state) for frames, state in requests]
        return self.batched(requests)

    def one(self, frames: np.ndarray, state: np.ndarray) -> Request:
        """One stream, all its frames in one call of the sequence model."""
        if not len(frames):
            return np.zeros(0, np.float32), state
        probs, h, c = self.sequence.run(None, {
            "input": np.ascontiguousarray(frames, dtype=np.float32),
            "h": state[0].reshape(1, 1, 128).astype(np.float32),
            "c": state[1].reshape(1, 1, 128).astype(np.float32),
        })  # fmt: skip
        return np.asarray(probs, np.float32).reshape(-1), np.stack([h.reshape(128), c.reshape(128)])

    def batched(self, requests: Sequence[Request]) -> list[Request]:
        """Several streams stepped together, one call of the streaming model per frame."""
        order, packed, states, active = ragged(requests)
        probs = np.zeros(packed.shape[:2], np.float32)
        for t, width in enumerate(active):
            out, new = self.streaming.run(None, {
                "input": packed[t, :width],
                "state": np.ascontiguousarray(states[:, :width]),
                "sr": self._rate,
            })  # fmt: skip
            probs[t, :width] = out[:, 0]
            states[:, :width] = new
        return unpack(order, probs, states, requests)


class TorchBackend:
    """The TorchScript model of the wheel (``torch`` is imported only here)."""

    name = "torch"

    def __init__(self, threads: int = 1) -> None:
        try:
            import torch
        except ImportError as exc:
            raise ConfigError(
                "LOOM_VAD_BACKEND=torch needs torch installed (`uv sync --extra models`)"
            ) from exc
        self.torch: Any = torch
        torch.set_num_threads(threads)
        with warnings.catch_warnings():  # "use torch.export": the wheel ships TorchScript
            warnings.simplefilter("ignore", FutureWarning)
            model = torch.jit.load(str(model_file("silero_vad.jit")), map_location="cpu")
        self.model: Any = model.eval()._model  # the 16 kHz network: (x, state) -> (p, state)

    def run(self, requests: Sequence[Request]) -> list[Request]:
        torch = self.torch
        order, packed, states, active = ragged(requests)
        probs = np.zeros(packed.shape[:2], np.float32)
        frames, state = torch.from_numpy(packed), torch.from_numpy(states)
        with torch.inference_mode():
            for t, width in enumerate(active):
                out, new = self.model(frames[t, :width], state[:, :width].contiguous())
                probs[t, :width] = out[:, 0].numpy()
                state[:, :width] = new
        return unpack(order, probs, state.numpy(), requests)
