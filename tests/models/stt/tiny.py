"""A Kyutai STT checkpoint of the real architecture at toy size, made in the test:
config.json with the keys of kyutai/stt-1b-en_fr, random LM and Mimi weights saved as
safetensors the way moshi's loaders read them, and a sentencepiece model trained here
from a few lines of text."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

TEXT = [
    "the quick brown fox jumps over the lazy dog",
    "hello world this is a small speech to text model",
    "bonjour le monde ceci est un petit modele",
    "we move the meeting to ten tomorrow morning",
    "speech segments arrive from many devices at once",
    "words come out with start and end times",
]

# kyutai/stt-1b-en_fr's config.json, its dimensions made small.
LM_CONFIG: dict[str, Any] = {
    "card": 64,
    "n_q": 4,
    "dep_q": 0,
    "delays": [0] * 5,
    "dim": 64,
    "text_card": 0,  # set to the tokenizer's size
    "existing_text_padding_id": 3,
    "num_heads": 4,
    "num_layers": 2,
    "hidden_scale": 4.125,
    "causal": True,
    "layer_scale": None,
    "context": 750,
    "max_period": 100000.0,
    "gating": "silu",
    "norm": "rms_norm_f32",
    "positional_embedding": "rope",
    "depformer_dim": 64,
    "depformer_num_heads": 4,
    "depformer_num_layers": 1,
    "depformer_dim_feedforward": None,
    "depformer_multi_linear": True,
    "depformer_pos_emb": "none",
    "depformer_weights_per_step": True,
    "conditioners": {},
    "cross_attention": False,
    "extra_heads_num_heads": 4,
    "extra_heads_dim": 6,
    "model_id": {"sig": "tiny0001", "epoch": 1},
    "lm_gen_config": {"temp": 0.0, "temp_text": 0.0, "top_k": 250, "top_k_text": 50},
    "stt_config": {"audio_delay_seconds": 0.5, "audio_silence_prefix_seconds": 0.0},
    "model_type": "stt",
    "mimi_name": "mimi-tiny.safetensors",
    "mimi_config_name": "mimi_config.json",
    "tokenizer_name": "tokenizer_tiny.model",
}


def mimi_config() -> dict[str, Any]:
    """Mimi's real layout (24 kHz, 12.5 frames/s, strides 8-6-5-4) with few channels."""
    from moshi.models import loaders

    seanet = {**loaders._seanet_kwargs, "n_filters": 4, "dimension": 32}
    transformer = {**loaders._transformer_kwargs, "d_model": 32, "num_heads": 2,
                   "num_layers": 1, "dim_feedforward": 64, "input_dimension": 32,
                   "output_dimensions": [32]}  # fmt: skip
    quantizer = {"dimension": 16, "n_q": 4, "bins": LM_CONFIG["card"], "input_dimension": 32,
                 "output_dimension": 32}  # fmt: skip
    return {"sample_rate": 24000, "channels": 1, "frame_rate": 12.5, "seanet": seanet,
            "quantizer": quantizer, "transformer": transformer}  # fmt: skip


def train_tokenizer(vocab_size: int = 96) -> bytes:
    """A sentencepiece model with Kyutai's special ids: 0 unk (end of padding in the text
    stream), 1 bos, 2 eos, 3 pad."""
    import sentencepiece

    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(TEXT * 4),
        model_writer=model,
        vocab_size=vocab_size,
        model_type="unigram",
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=3,
        hard_vocab_limit=False,
        minloglevel=2,
    )
    return model.getvalue()


def write_checkpoint(directory: Path, seed: int = 0) -> Path:
    """The toy checkpoint in ``directory`` (made if missing); returns it."""
    import sentencepiece
    import torch
    from moshi.models import loaders
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    spm = train_tokenizer()
    (directory / LM_CONFIG["tokenizer_name"]).write_bytes(spm)
    vocab = sentencepiece.SentencePieceProcessor(model_proto=spm).vocab_size()
    config = {**LM_CONFIG, "text_card": vocab}
    (directory / "config.json").write_text(json.dumps(config, indent=1))
    (directory / LM_CONFIG["mimi_config_name"]).write_text(json.dumps(mimi_config()))
    torch.manual_seed(seed)
    lm_kwargs = {k: v for k, v in config.items() if k not in _NOT_LM}
    lm = loaders.get_moshi_lm(None, lm_kwargs=lm_kwargs, device="cpu", dtype=torch.float32)
    save_file({k: v.contiguous() for k, v in lm.state_dict().items()},
              str(directory / "model.safetensors"))  # fmt: skip
    mimi = loaders.get_mimi(None, mimi_config(), num_codebooks=LM_CONFIG["n_q"])
    _seed_codebooks(mimi)
    save_file({k: v.contiguous() for k, v in mimi.state_dict().items()},
              str(directory / LM_CONFIG["mimi_name"]))  # fmt: skip
    return directory


def _seed_codebooks(mimi: Any) -> None:
    """An untrained Mimi's codebooks are all zero (every frame gets code 0): seed the
    first one with the encoder's own latents of random audio, as k-means would, and the
    rest with noise of the residuals' size, so different audio gives different codes."""
    import torch

    with torch.no_grad():
        audio = torch.from_numpy(speech_like(4.0, seed=99, rate=24_000).astype(np.float32) / 32768)
        latents = mimi._encode_to_unquantized_latent(audio[None, None])
        split = mimi.quantizer
        frames = split.rvq_first.input_proj(latents)[0].T  # (frames, dim)
        first = split.rvq_first.vq.layers[0]._codebook
        pick = torch.randint(0, frames.shape[0], (first.embedding_sum.shape[0],))
        first.embedding_sum.copy_(
            frames[pick] + 0.01 * frames.std(0) * torch.randn_like(frames[pick])
        )
        for layer in split.rvq_rest.vq.layers:
            layer._codebook.embedding_sum.normal_(0, 0.3 * float(frames.std()))
        for name, buffer in mimi.named_buffers():
            if name.endswith("_initialized"):
                buffer.fill_(1.0)


_NOT_LM = {"model_id", "lm_gen_config", "stt_config", "model_type", "mimi_name",
           "mimi_config_name", "tokenizer_name"}  # fmt: skip


def speech_like(seconds: float, seed: int = 0, rate: int = 16_000) -> np.ndarray:
    """Noise whose loudness changes every 80 ms, like syllables: int16 mono."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    step = rate * 80 // 1000
    loudness = np.repeat(rng.uniform(0.0, 0.5, n // step + 1), step)[:n]
    return (np.clip(rng.standard_normal(n) * loudness, -1, 1) * 32767).astype(np.int16)


@contextmanager
def loaded(checkpoint: Path) -> Iterator[Callable[..., Any]]:
    """``make(**settings)`` loads an SttModel from ``checkpoint``; all stop at the end."""
    from models.stt.predictor import SttModel
    from models.stt.settings import SttSettings

    made: list[Any] = []

    def make(**settings: Any) -> Any:
        config = SttSettings(stt_model_dir=str(checkpoint), stt_threads=1, **settings)
        model = SttModel("stt", config)
        model.load()
        made.append(model)
        return model

    try:
        yield make
    finally:
        for model in made:
            model.stop()


def stt_request(pcm: np.ndarray, rate: int = 16_000, *, tokens: bool = True) -> dict[str, Any]:
    """The stt request for int16 ``pcm``."""
    body = base64.b64encode(pcm.astype("<i2").tobytes()).decode("ascii")
    return {"audio": body, "sample_rate": rate, "format": "pcm_s16le", "tokens": tokens}
