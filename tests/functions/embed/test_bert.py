"""The numpy BERT on a tiny random network: it matches a plain, loop-by-loop reading of
the architecture (float64, one sequence at a time, no padding), and it has the
properties a batched encoder must have (padding and batch neighbours change nothing)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from functions.embed.bert import Bert, BertConfig, gelu
from functions.embed.encoder import SentenceEncoder
from loom.errors import ConfigError
from tests.functions.embed.conftest import TINY, tiny_weights, write_tiny_model


def reference(config: dict[str, Any], w: dict[str, np.ndarray], ids: list[int]) -> np.ndarray:
    """BertModel's last hidden states of one unpadded sequence, written out plainly."""
    w = {name: value.astype(np.float64) for name, value in w.items()}
    heads = config["num_attention_heads"]
    size = config["hidden_size"] // heads
    eps = config["layer_norm_eps"]

    def norm(x: np.ndarray, name: str) -> np.ndarray:
        out = np.empty_like(x)
        for i, row in enumerate(x):
            mean = sum(row) / len(row)
            var = sum((v - mean) ** 2 for v in row) / len(row)
            out[i] = [(v - mean) / math.sqrt(var + eps) for v in row]
        return out * w[f"{name}.weight"] + w[f"{name}.bias"]

    def dense(x: np.ndarray, name: str) -> np.ndarray:
        return x @ w[f"{name}.weight"].T + w[f"{name}.bias"]

    n = len(ids)
    x = (
        w["embeddings.word_embeddings.weight"][ids]
        + w["embeddings.position_embeddings.weight"][:n]
        + w["embeddings.token_type_embeddings.weight"][0]
    )
    x = norm(x, "embeddings.LayerNorm")
    for layer in range(config["num_hidden_layers"]):
        at = f"encoder.layer.{layer}."
        q = dense(x, at + "attention.self.query")
        k = dense(x, at + "attention.self.key")
        v = dense(x, at + "attention.self.value")
        context = np.zeros((n, config["hidden_size"]))
        for h in range(heads):
            cols = slice(h * size, (h + 1) * size)
            for i in range(n):
                scores = [float(q[i, cols] @ k[j, cols]) / math.sqrt(size) for j in range(n)]
                top = max(scores)
                e = [math.exp(s - top) for s in scores]
                p = [value / sum(e) for value in e]
                context[i, cols] = sum(p[j] * v[j, cols] for j in range(n))
        x = norm(
            dense(context, at + "attention.output.dense") + x, at + "attention.output.LayerNorm"
        )
        inner = dense(x, at + "intermediate.dense")
        inner = np.vectorize(lambda t: 0.5 * t * (1 + math.erf(t / math.sqrt(2))))(inner)
        x = norm(dense(inner, at + "output.dense") + x, at + "output.LayerNorm")
    return x


def _padded(sequences: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    longest = max(map(len, sequences))
    ids = np.zeros((len(sequences), longest), np.int64)
    mask = np.zeros((len(sequences), longest), np.float32)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)], mask[row, : len(seq)] = seq, 1
    return ids, mask


SEQUENCES = [[2, 4, 5, 6, 7, 4, 8, 3], [2, 9, 3], [2, 10, 11, 12, 13, 3], [2, 5, 5, 5, 5, 5, 5, 3]]


def test_it_matches_a_plain_reading_of_the_architecture() -> None:
    weights = tiny_weights(TINY)
    bert = Bert(BertConfig.from_dict(TINY), weights)
    ids, mask = _padded(SEQUENCES)
    hidden = bert(ids, mask)
    assert hidden.dtype == np.float32
    assert hidden.shape == (len(SEQUENCES), len(SEQUENCES[0]), TINY["hidden_size"])
    for row, seq in enumerate(SEQUENCES):
        expected = reference(TINY, weights, seq)
        assert np.abs(hidden[row, : len(seq)] - expected).max() < 1e-4


def test_padding_and_batch_neighbours_change_nothing() -> None:
    bert = Bert(BertConfig.from_dict(TINY), tiny_weights(TINY, seed=3))
    together = bert(*_padded(SEQUENCES))
    for row, seq in enumerate(SEQUENCES):
        alone = bert(*_padded([seq]))[0]
        assert np.abs(together[row, : len(seq)] - alone).max() < 1e-5
        # what the padding holds is masked out: other ids there change nothing either
        ids, mask = _padded([seq, [2] * 12])
        ids[0, len(seq) :] = 17
        assert np.abs(bert(ids, mask)[0, : len(seq)] - alone).max() < 1e-5


def test_sizes_come_from_the_config() -> None:
    config = {
        **TINY,
        "hidden_size": 8,
        "num_attention_heads": 2,
        "num_hidden_layers": 3,
        "intermediate_size": 7,
        "max_position_embeddings": 9,
    }
    bert = Bert(BertConfig.from_dict(config), tiny_weights(config))
    assert len(bert.layers) == 3
    assert bert(*_padded([[2, 4, 3]])).shape == (1, 3, 8)
    with pytest.raises(ValueError, match="exceed the model's 9"):
        bert(*_padded([[2] * 10]))


def test_a_bert_prefix_and_tf_era_layer_norm_names_are_read() -> None:
    weights = tiny_weights(TINY, prefix="bert.")
    renamed = {
        n.replace("LayerNorm.weight", "LayerNorm.gamma").replace(
            "LayerNorm.bias", "LayerNorm.beta"
        ): v
        for n, v in weights.items()
    }
    plain = Bert(BertConfig.from_dict(TINY), tiny_weights(TINY))
    for variant in (weights, renamed):
        bert = Bert(BertConfig.from_dict(TINY), variant)
        ids, mask = _padded(SEQUENCES)
        assert np.array_equal(bert(ids, mask), plain(ids, mask))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model_type": "roberta"}, "not a BERT model"),
        ({"position_embedding_type": "relative_key"}, "absolute position embeddings"),
        ({"hidden_act": "swish"}, "hidden_act 'swish'"),
        ({"num_attention_heads": 5}, "not a multiple"),
    ],
)
def test_configs_it_cannot_run_are_refused(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        BertConfig.from_dict({**TINY, **change})


def test_a_checkpoint_that_does_not_fit_its_config_is_refused() -> None:
    weights = tiny_weights(TINY)
    with pytest.raises(ConfigError, match=r"lacks encoder\.layer\.1\.output\.dense\.bias"):
        Bert(
            BertConfig.from_dict(TINY),
            {n: v for n, v in weights.items() if n != "encoder.layer.1.output.dense.bias"},
        )
    with pytest.raises(ConfigError, match=r"is \(24, 12\), the config makes it \(30, 12\)"):
        Bert(BertConfig.from_dict({**TINY, "vocab_size": 30}), weights)
    with pytest.raises(ConfigError, match="not a BERT model"):
        Bert(BertConfig.from_dict(TINY), {"decoder.weight": weights["embeddings.LayerNorm.bias"]})


def test_gelu_uses_the_exact_erf() -> None:
    x = np.linspace(-12, 12, 20_001, dtype=np.float32)
    exact = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x.astype(np.float64)])
    assert np.abs(gelu(x.copy()).astype(np.float64) - exact).max() < 2e-6
    tanh_form = 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    assert np.abs(tanh_form - exact).max() > 1e-4  # the approximation would be noticed


def test_the_sentence_encoder_pools_the_reference_states(tmp_path: Path) -> None:
    """Mean pooling over the real tokens, then unit length: as modules.json says."""
    encoder = SentenceEncoder.load(write_tiny_model(tmp_path / "m"))
    texts = ["the cat sits on the mat", "a dog", "big red sun !"]
    vectors = encoder.embed(texts)
    weights = tiny_weights(TINY)
    for text, vector in zip(texts, vectors, strict=True):
        states = reference(TINY, weights, list(encoder.tokenize(text).ids))
        mean = states.mean(axis=0)
        assert np.abs(vector - mean / np.linalg.norm(mean)).max() < 1e-5


@pytest.mark.parametrize("pooling", ["cls", "max"])
def test_other_pooling_modes(tmp_path: Path, pooling: str) -> None:
    encoder = SentenceEncoder.load(
        write_tiny_model(tmp_path / "m", pooling=pooling, normalize=False)
    )
    text = "the cat sits on the mat"
    states = reference(TINY, tiny_weights(TINY), list(encoder.tokenize(text).ids))
    expected = states[0] if pooling == "cls" else states.max(axis=0)
    together = encoder.embed([text, "a dog runs in the park , in the rain"])
    assert np.abs(together[0] - expected).max() < 1e-4
