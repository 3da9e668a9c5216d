"""Speech-to-text on one GPU: real-time streams per GPU of the stt engine.

The full ``kyutai/stt-1b-en_fr`` architecture (its config.json, written here; Mimi at
its published size) with random weights, the LM in bfloat16, loaded through the
predictor's own loader. For batch sizes up to the largest whose step stays under 80 ms
(one frame of audio per stream: real time), the engine of ``models/stt`` transcribes
that many streams at once, each ``LOOM_BENCH_STT_SECONDS`` of speech-like noise; the
table gives the step time, how much faster than real time each stream runs, and the
GPU memory. In the same run, beside it: moshi's own reference streaming loop
(``moshi.run_inference.InferenceState``), one stream at a time, whose step time bounds
how many streams one GPU serves in real time that way (80 ms / step). Kyutai publishes
400 real-time streams per H100 for this model. Skips (one row saying why) without a GPU.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import io
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

TITLE = (
    "Speech-to-text (Kyutai stt-1b architecture, random bf16 weights): real-time streams per GPU"
)
GOAL = "> 400 real-time streams per GPU (Kyutai's H100 figure)"
SECONDS = float(os.environ.get("LOOM_BENCH_STT_SECONDS", "6"))
BATCHES = (1, 64, 128, 256, 384, 448, 512, 576, 640, 704, 768, 896, 1024)
FRAME_MS = 80.0

# kyutai/stt-1b-en_fr's config.json
STT_1B: dict[str, Any] = {
    "card": 2048, "n_q": 32, "dep_q": 0, "delays": [0] * 33, "dim": 2048, "text_card": 8000,
    "existing_text_padding_id": 3, "num_heads": 16, "num_layers": 16, "hidden_scale": 4.125,
    "causal": True, "layer_scale": None, "context": 750, "max_period": 100000.0,
    "gating": "silu", "norm": "rms_norm_f32", "positional_embedding": "rope",
    "depformer_dim": 1024, "depformer_num_heads": 16, "depformer_num_layers": 6,
    "depformer_dim_feedforward": None, "depformer_multi_linear": True,
    "depformer_pos_emb": "none", "depformer_weights_per_step": True, "conditioners": {},
    "cross_attention": False, "extra_heads_num_heads": 4, "extra_heads_dim": 6,
    "lm_gen_config": {"temp": 0.0, "temp_text": 0.0, "top_k": 250, "top_k_text": 50},
    "stt_config": {"audio_delay_seconds": 0.5, "audio_silence_prefix_seconds": 0.0},
    "model_type": "stt", "mimi_name": "mimi-pytorch-e351c8d8@125.safetensors",
    "tokenizer_name": "tokenizer_en_fr_audio_8000.model",
}  # fmt: skip
_NOT_LM = {"lm_gen_config", "stt_config", "model_type", "mimi_name", "tokenizer_name"}


def _row(measure: str, streams: Any = "", step_ms: Any = "", faster: Any = "", gib: Any = "",
         goal: str = "") -> dict[str, Any]:  # fmt: skip
    return {"measure": measure, "streams": streams, "step ms": step_ms,
            "x real time per stream": faster, "GPU GiB": gib, "goal": goal}  # fmt: skip


def _write_checkpoint(directory: Path, config: dict[str, Any], device: str = "cuda") -> Path:
    """A checkpoint of ``config`` with random weights (the tokenizer a small stand-in: it
    only turns tokens into words)."""
    import torch
    from moshi.models import loaders
    from safetensors.torch import save_file

    from tests.models.stt.tiny import train_tokenizer

    (directory / "config.json").write_text(json.dumps(config, indent=1))
    (directory / config["tokenizer_name"]).write_bytes(train_tokenizer())
    lm_kwargs = {k: v for k, v in config.items() if k not in _NOT_LM}
    lm = loaders.get_moshi_lm(None, lm_kwargs=lm_kwargs, device=device, dtype=torch.bfloat16)
    save_file({k: v.detach().cpu().contiguous() for k, v in lm.state_dict().items()},
              str(directory / "model.safetensors"))  # fmt: skip
    del lm
    mimi = loaders.get_mimi(None, None, device=device, num_codebooks=config["n_q"])
    save_file({k: v.detach().cpu().contiguous() for k, v in mimi.state_dict().items()},
              str(directory / config["mimi_name"]))  # fmt: skip
    del mimi
    return directory


def _audio(seconds: float) -> Any:
    import numpy as np

    from tests.models.stt.tiny import speech_like

    return speech_like(seconds, seed=1, rate=24_000).astype(np.float32) / 32768.0


def _engine(checkpoint: Any, streams: int) -> tuple[float, float]:
    """Mean step (ms) of ``streams`` streams transcribed at once, and peak GPU GiB."""
    from models.stt.engine import SttEngine

    _fresh_memory()
    engine = SttEngine(checkpoint.mimi, checkpoint.lm, slots=streams, max_queued=streams,
                       gen_config=checkpoint.info.lm_gen_config,
                       silence_prefix_s=checkpoint.silence_prefix_s,
                       flush_s=checkpoint.audio_delay_s + 1.0)  # fmt: skip
    try:
        engine.warm_up()
        pcm = _audio(SECONDS)

        async def run() -> tuple[float, int]:
            steps, started = engine.stats.steps, time.perf_counter()
            await asyncio.gather(*(engine.transcribe(pcm) for _ in range(streams)))
            return time.perf_counter() - started, engine.stats.steps - steps

        wall, steps = asyncio.run(run())
        return 1000 * wall / steps, _peak_gib()
    finally:
        engine.close()


def _reference(checkpoint: Any) -> tuple[float, float]:
    """Moshi's reference loop (run_inference.InferenceState), one stream: ms per step."""
    import torch
    from moshi.client_utils import RawPrinter
    from moshi.run_inference import InferenceState

    _fresh_memory()
    device = checkpoint.lm.device
    state = InferenceState(checkpoint.info, checkpoint.mimi, checkpoint.tokenizer, checkpoint.lm,
                           batch_size=1, cfg_coef=1.0, device=device,
                           **checkpoint.info.lm_gen_config)  # fmt: skip
    state.printer = RawPrinter(io.StringIO(), io.StringIO())  # type: ignore[no-untyped-call]
    pcm = torch.from_numpy(_audio(SECONDS)).to(device)[None, None]
    state.run(pcm[..., :24_000])  # warm up (CUDA graphs are captured on the second step)
    padded = SECONDS + checkpoint.audio_delay_s + 1.0 + checkpoint.silence_prefix_s
    steps = int(padded * 12.5) + 1  # the frames, and the first one stepped twice
    started = time.perf_counter()
    state.run(pcm)  # reads every step's text token back: it waits for the GPU
    return 1000 * (time.perf_counter() - started) / steps, _peak_gib()


def _fresh_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _peak_gib() -> float:
    import torch

    return torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else 0.0


def run(services: object = None) -> list[dict[str, Any]]:
    """The rows of the table (``python -m bench stt_gpu``; needs none of the services)."""
    try:
        import torch
    except ImportError:
        return [_row("skipped: torch is not installed (uv sync --extra models)")]
    if not torch.cuda.is_available():
        return [_row("skipped: no CUDA GPU on this machine (the stt bench needs one)")]
    if importlib.util.find_spec("moshi") is None:
        return [_row("skipped: moshi is not installed (uv sync --extra models)")]
    from models.stt.checkpoint import load_checkpoint

    with tempfile.TemporaryDirectory(prefix="loom-bench-stt-") as tmp:
        directory = _write_checkpoint(Path(tmp), STT_1B)
        checkpoint = load_checkpoint(directory, torch.device("cuda"), torch.bfloat16)
    return _rows(checkpoint, BATCHES, torch.cuda.get_device_name())


def _rows(checkpoint: Any, batches: tuple[int, ...], name: str) -> list[dict[str, Any]]:
    import torch

    rows: list[dict[str, Any]] = []
    best = 0
    for streams in batches:
        try:
            step_ms, gib = _engine(checkpoint, streams)
        except torch.cuda.OutOfMemoryError:
            rows.append(_row(f"engine, {streams} streams in one batch: out of GPU memory",
                             streams))  # fmt: skip
            break
        rows.append(_row(f"engine, {streams} streams in one batch", streams, step_ms,
                         FRAME_MS / step_ms, gib))  # fmt: skip
        if step_ms >= FRAME_MS:
            break
        best = streams
    ref_ms, ref_gib = _reference(checkpoint)
    ref_streams = int(FRAME_MS // ref_ms)
    rows.append(_row("moshi's reference loop, one stream at a time", 1, ref_ms,
                     FRAME_MS / ref_ms, ref_gib))  # fmt: skip
    rows.append(_row(f"real-time streams per GPU ({name}): moshi's loop, streams taken in turn",
                     ref_streams))  # fmt: skip
    ratio = f"{best / ref_streams:.1f}x moshi's loop" if ref_streams else "moshi's loop: none"
    rows.append(_row(f"real-time streams per GPU ({name}): engine, largest batch under 80 ms",
                     best, "", ratio, "", GOAL))  # fmt: skip
    return rows
