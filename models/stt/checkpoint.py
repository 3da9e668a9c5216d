"""A Kyutai STT checkpoint from a local directory, through moshi's own loaders.

The directory holds what a Kyutai STT repository on the Hugging Face hub holds
(``kyutai/stt-1b-en_fr``): ``config.json`` (the LM's architecture plus ``mimi_name``,
``tokenizer_name``, ``stt_config`` with the audio delay, ``lm_gen_config``), the LM's
safetensors (``moshi_name``, default ``model.safetensors``), Mimi's safetensors and the
sentencepiece model. An optional ``mimi_config_name`` names a JSON file with Mimi's own
architecture (moshi's default is Kyutai's published Mimi). Every file is passed to
``CheckpointInfo`` as a local path, so moshi never reaches for the hub.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loom.errors import ConfigError

__all__ = ["Checkpoint", "load_checkpoint"]

# File names moshi assumes when config.json names none (moshi.models.loaders).
_DEFAULT_NAMES = {
    "moshi_name": "model.safetensors",
    "mimi_name": "tokenizer-e351c8d8-checkpoint125.safetensors",
    "tokenizer_name": "tokenizer_spm_32k_3.model",
}


@dataclass(frozen=True)
class Checkpoint:
    """What the engine needs: Mimi, the LM, the text tokenizer and the STT timing."""

    info: Any  # moshi.models.loaders.CheckpointInfo
    mimi: Any  # moshi.models.MimiModel
    lm: Any  # moshi.models.LMModel
    tokenizer: Any  # sentencepiece.SentencePieceProcessor
    audio_delay_s: float
    silence_prefix_s: float

    @property
    def version(self) -> str | None:
        """``<sig>@<epoch>`` from config.json's ``model_id``, when it has one."""
        model_id = self.info.model_id or {}
        if "sig" not in model_id:
            return None
        epoch = model_id.get("epoch")
        return f"{model_id['sig']}@{epoch}" if epoch is not None else str(model_id["sig"])


def _files(directory: Path) -> tuple[dict[str, Any], dict[str, Path]]:
    where = f"LOOM_STT_MODEL_DIR={directory}"
    if not directory.is_dir():
        raise ConfigError(
            f"{where} is not a directory: it should hold a Kyutai STT checkpoint (KServe's "
            "storage initializer puts LOOM_STT_STORAGE_URI there; nothing is downloaded)"
        )
    config_path = directory / "config.json"
    try:
        config = json.loads(config_path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{where} has no config.json (a Kyutai STT checkpoint)") from None
    except ValueError as exc:
        raise ConfigError(f"{config_path} is not JSON: {exc}") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{config_path} does not hold a JSON object")
    files = {"config": config_path}
    for key, default in _DEFAULT_NAMES.items():
        files[key] = directory / str(config.get(key, default))
    for key in ("mimi_config_name", "lora_name"):
        if config.get(key):
            files[key] = directory / str(config[key])
    missing = sorted(str(p.name) for p in files.values() if not p.is_file())
    if missing:
        raise ConfigError(f"{where} lacks {', '.join(missing)} (named by its config.json)")
    return config, files


def load_checkpoint(directory: Path, device: Any, dtype: Any) -> Checkpoint:
    """Mimi, the LM (``dtype``) and the tokenizer of the checkpoint in ``directory``."""
    from moshi.models import loaders

    config, files = _files(directory)
    if config.get("model_type", "moshi") != "stt":
        raise ConfigError(
            f"{files['config']} is a {config.get('model_type', 'moshi')!r} checkpoint, "
            "not speech-to-text (model_type 'stt')"
        )
    if config.get("dep_q", 0) != 0:
        raise ConfigError(f"{files['config']}: a speech-to-text LM generates no audio (dep_q 0)")
    info = loaders.CheckpointInfo.from_hf_repo(
        str(directory),
        moshi_weights=files["moshi_name"],
        mimi_weights=files["mimi_name"],
        tokenizer=files["tokenizer_name"],
        config_path=files["config"],
        mimi_config_path=files.get("mimi_config_name"),
        lora_weights=files.get("lora_name"),
    )
    mimi = info.get_mimi(device=device)
    lm = info.get_moshi(device=device, dtype=dtype)
    tokenizer = info.get_text_tokenizer()
    if tokenizer.vocab_size() > lm.text_card:
        raise ConfigError(
            f"{files['tokenizer_name'].name} has {tokenizer.vocab_size()} pieces, more than "
            f"the LM's {lm.text_card} text tokens"
        )
    if mimi.num_codebooks < lm.n_q:
        raise ConfigError(f"Mimi gives {mimi.num_codebooks} codebooks, the LM reads {lm.n_q}")
    if mimi.sample_rate % mimi.frame_rate:
        raise ConfigError(f"Mimi's {mimi.frame_rate} frames/s do not divide {mimi.sample_rate} Hz")
    stt = info.stt_config or {}
    return Checkpoint(
        info=info,
        mimi=mimi,
        lm=lm,
        tokenizer=tokenizer,
        audio_delay_s=float(stt.get("audio_delay_seconds", 0.0)),
        silence_prefix_s=float(stt.get("audio_silence_prefix_seconds", 0.0)),
    )
