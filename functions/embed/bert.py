"""A BERT encoder in numpy: token ids in, one hidden state per token out.

The network of Hugging Face's ``BertModel`` (absolute position embeddings, post-LayerNorm
blocks of self-attention and a GELU feed-forward layer), read from a ``config.json`` and
a ``model.safetensors``: every size comes from the config, so any BERT-family checkpoint
runs. Everything is float32. The query, key and value projections are one matrix
product, with the attention's 1/sqrt(head size) folded into the query weights; attention
runs a few sequences at a time so that its (heads x length x length) scores stay small.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from loom.errors import ConfigError

__all__ = ["Bert", "BertConfig", "gelu"]

_SCORES_BYTES = 16 << 20  # attention scores computed at once: bounds the scratch memory
_GELU_ROWS = 64  # rows of the feed-forward layer per GELU block: stays in the CPU's cache
_MASKED = np.float32(-1e9)  # added to the scores of padding: nothing attends to it


@dataclass(frozen=True)
class BertConfig:
    """The sizes of a BERT network, as its ``config.json`` gives them."""

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int
    type_vocab_size: int = 2
    hidden_act: str = "gelu"
    layer_norm_eps: float = 1e-12

    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], where: str = "config.json") -> BertConfig:
        kind = raw.get("model_type", "bert")
        if kind != "bert":
            raise ConfigError(f"{where}: model_type {kind!r} is not a BERT model")
        if raw.get("position_embedding_type", "absolute") != "absolute":
            raise ConfigError(f"{where}: only absolute position embeddings are supported")
        try:
            config = cls(**{name: raw[name] for name in cls.__dataclass_fields__ if name in raw})
        except TypeError as exc:
            raise ConfigError(f"{where} lacks a size: {exc}") from None
        if config.hidden_act not in _ACTIVATIONS:
            raise ConfigError(
                f"{where}: hidden_act {config.hidden_act!r} is not one of {sorted(_ACTIVATIONS)}"
            )
        if config.hidden_size % config.num_attention_heads:
            raise ConfigError(f"{where}: hidden_size is not a multiple of num_attention_heads")
        return config

    @classmethod
    def read(cls, path: Path) -> BertConfig:
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read the model's {path}: {exc}") from None
        return cls.from_dict(raw, str(path))


def gelu(x: np.ndarray) -> np.ndarray:
    """GELU with the exact erf, in place: ``x * (1 + erf(x / sqrt 2)) / 2``.

    erf is a rational approximation on [-4, 4] (beyond, it is +-1 in float32), within
    5e-7 of the exact one; taken in blocks of rows that fit the CPU's cache."""
    flat = x.reshape(-1, x.shape[-1])
    for start in range(0, len(flat), _GELU_ROWS):
        block = flat[start : start + _GELU_ROWS]
        z = np.clip(block, -4 * math.sqrt(2), 4 * math.sqrt(2)) * np.float32(1 / math.sqrt(2))
        z2 = z * z
        p = np.full_like(z, _ERF_P[0])
        for c in _ERF_P[1:]:
            p *= z2
            p += c
        p *= z
        q = np.full_like(z, _ERF_Q[0])
        for c in _ERF_Q[1:]:
            q *= z2
            q += c
        p /= q
        p += 1
        p *= 0.5
        block *= p
    return x


# erf(z) ~ z P(z^2) / Q(z^2) on [-4, 4] (the float32 erf of Eigen and XLA)
_ERF_P = tuple(
    np.float32(c)
    for c in (
        -2.72614225801306e-10,
        2.77068142495902e-08,
        -2.10102402082508e-06,
        -5.69250639462346e-05,
        -7.34990630326855e-04,
        -2.95459980854025e-03,
        -1.60960333262415e-02,
    )
)
_ERF_Q = tuple(
    np.float32(c)
    for c in (
        -1.45660718464996e-05,
        -2.13374055278905e-04,
        -1.68282697438203e-03,
        -7.37332916720468e-03,
        -1.42647390514189e-02,
    )
)


def _gelu_tanh(x: np.ndarray) -> np.ndarray:
    inner = np.tanh(np.float32(math.sqrt(2 / math.pi)) * (x + np.float32(0.044715) * x**3))
    x *= 0.5 * (1 + inner)
    return x


def _relu(x: np.ndarray) -> np.ndarray:
    np.maximum(x, 0, out=x)
    return x


_ACTIVATIONS = {
    "gelu": gelu,
    "gelu_new": _gelu_tanh,
    "gelu_pytorch_tanh": _gelu_tanh,
    "relu": _relu,
}


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    x = x - mean
    var = np.einsum("...i,...i->...", x, x)[..., None] / np.float32(x.shape[-1])
    x *= 1 / np.sqrt(var + np.float32(eps))
    x *= weight
    x += bias
    return x


@dataclass(frozen=True)
class _Layer:
    qkv: np.ndarray  # (hidden, 3 hidden): query (scaled), key, value
    qkv_bias: np.ndarray
    out: np.ndarray  # (hidden, hidden)
    out_bias: np.ndarray
    norm1: tuple[np.ndarray, np.ndarray]
    up: np.ndarray  # (hidden, intermediate)
    up_bias: np.ndarray
    down: np.ndarray  # (intermediate, hidden)
    down_bias: np.ndarray
    norm2: tuple[np.ndarray, np.ndarray]


class Bert:
    """The encoder: ``Bert(config, weights)(ids, mask)`` -> (batch, length, hidden)."""

    def __init__(self, config: BertConfig, weights: Mapping[str, np.ndarray]) -> None:
        self.config = config
        w = _Weights(weights, config)
        hidden = config.hidden_size
        self.word = w.get("embeddings.word_embeddings.weight", config.vocab_size, hidden)
        self.position = w.get(
            "embeddings.position_embeddings.weight", config.max_position_embeddings, hidden
        )
        self.token_type = w.get(
            "embeddings.token_type_embeddings.weight", config.type_vocab_size, hidden
        )
        self.norm = w.norm("embeddings.LayerNorm")
        self.layers = [w.layer(i) for i in range(config.num_hidden_layers)]
        self.activation = _ACTIVATIONS[config.hidden_act]

    @classmethod
    def from_safetensors(cls, config: BertConfig, path: Path) -> Bert:
        """The network with the weights of ``path``, read one tensor at a time (each is
        rearranged as it comes, so the whole file is never in memory twice)."""
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="numpy") as tensors:
                return cls(config, _Tensors(tensors))
        except (OSError, SafetensorError) as exc:
            raise ConfigError(f"cannot read the model's {path}: {exc}") from None

    def __call__(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Hidden states (B, L, hidden) of token ``ids`` (B, L); ``mask`` (B, L) is 1 for
        tokens, 0 for padding. Token type 0 throughout (one text per row)."""
        cfg = self.config
        batch, length = ids.shape
        if length > cfg.max_position_embeddings:
            raise ValueError(f"{length} tokens exceed the model's {cfg.max_position_embeddings}")
        x = self.word[ids] + self.position[:length] + self.token_type[0]
        x = _layer_norm(x.reshape(batch * length, -1), *self.norm, cfg.layer_norm_eps)
        padded = not mask.all()  # no padding (one text, or texts of one length): no mask
        bias = np.where(mask > 0, np.float32(0), _MASKED)[:, None, None, :] if padded else None
        for layer in self.layers:
            attended = self._attention(x, layer, bias, batch, length)
            x = _layer_norm(attended + x, *layer.norm1, cfg.layer_norm_eps)
            up = x @ layer.up
            up += layer.up_bias
            down = self.activation(up) @ layer.down
            down += layer.down_bias
            x = _layer_norm(down + x, *layer.norm2, cfg.layer_norm_eps)
        return x.reshape(batch, length, -1)

    def _attention(
        self, x: np.ndarray, layer: _Layer, bias: np.ndarray | None, batch: int, length: int
    ) -> np.ndarray:
        heads, size = self.config.num_attention_heads, self.config.head_size
        qkv = x @ layer.qkv
        qkv += layer.qkv_bias
        # (3, B, heads, L, size)
        q, k, v = qkv.reshape(batch, length, 3, heads, size).transpose(2, 0, 3, 1, 4)
        context = np.empty((batch, length, heads, size), np.float32)
        step = max(1, _SCORES_BYTES // (heads * length * length * 4))
        for at in range(0, batch, step):
            rows = slice(at, at + step)
            scores = q[rows] @ k[rows].transpose(0, 1, 3, 2)
            if bias is not None:
                scores += bias[rows]
            scores -= scores.max(axis=-1, keepdims=True)
            np.exp(scores, out=scores)
            # softmax's division after the product: on (L, size) instead of (L, L) values
            weighted = scores @ v[rows]
            weighted /= scores.sum(axis=-1, keepdims=True)
            context[rows] = weighted.transpose(0, 2, 1, 3)
        out: np.ndarray = context.reshape(batch * length, heads * size) @ layer.out
        out += layer.out_bias
        return out


class _Tensors(Mapping[str, np.ndarray]):
    """An open safetensors file as a mapping that reads a tensor when it is asked for."""

    def __init__(self, handle: Any) -> None:
        self.handle, self.names = handle, frozenset(handle.keys())

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self.names:
            raise KeyError(name)
        tensor: np.ndarray = self.handle.get_tensor(name)
        return tensor

    def __contains__(self, name: object) -> bool:
        return name in self.names

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)


class _Weights:
    """A checkpoint's tensors by name, with or without a ``bert.`` prefix, as float32,
    checked against the sizes of the config."""

    def __init__(self, weights: Mapping[str, np.ndarray], config: BertConfig) -> None:
        self.weights, self.config = weights, config
        prefix = next(
            (
                p
                for p in ("", "bert.", "model.")
                if f"{p}embeddings.word_embeddings.weight" in weights
            ),
            None,
        )
        if prefix is None:
            raise ConfigError(
                "the checkpoint has no embeddings.word_embeddings.weight: not a BERT model"
            )
        self.prefix = prefix

    def get(self, name: str, *shape: int) -> np.ndarray:
        array = self.weights.get(self.prefix + name)
        if array is None:  # TF-era checkpoints name LayerNorm's weight and bias so
            old = name.replace("LayerNorm.weight", "LayerNorm.gamma")
            array = self.weights.get(self.prefix + old.replace("LayerNorm.bias", "LayerNorm.beta"))
        if array is None:
            raise ConfigError(f"the checkpoint lacks {self.prefix}{name}")
        if tuple(array.shape) != shape:
            raise ConfigError(
                f"{self.prefix}{name} is {tuple(array.shape)}, the config makes it {shape}"
            )
        return np.ascontiguousarray(array, dtype=np.float32)

    def linear(self, name: str, out: int, into: int) -> tuple[np.ndarray, np.ndarray]:
        """A dense layer from ``into`` to ``out`` features: weights (into, out) for
        ``x @ w``, and its bias."""
        weight = self.get(f"{name}.weight", out, into)  # (out, in), as torch keeps it
        return np.ascontiguousarray(weight.T), self.get(f"{name}.bias", out)

    def layer(self, index: int) -> _Layer:
        at, hidden = f"encoder.layer.{index}.", self.config.hidden_size
        inner = self.config.intermediate_size
        q, k, v = (
            self.linear(f"{at}attention.self.{n}", hidden, hidden)
            for n in ("query", "key", "value")
        )
        scale = np.float32(1 / math.sqrt(self.config.head_size))
        out, out_bias = self.linear(f"{at}attention.output.dense", hidden, hidden)
        up, up_bias = self.linear(f"{at}intermediate.dense", inner, hidden)
        down, down_bias = self.linear(f"{at}output.dense", hidden, inner)
        return _Layer(
            qkv=np.ascontiguousarray(np.concatenate([q[0] * scale, k[0], v[0]], axis=1)),
            qkv_bias=np.concatenate([q[1] * scale, k[1], v[1]]),
            out=out,
            out_bias=out_bias,
            norm1=self.norm(f"{at}attention.output.LayerNorm"),
            up=up,
            up_bias=up_bias,
            down=down,
            down_bias=down_bias,
            norm2=self.norm(f"{at}output.LayerNorm"),
        )

    def norm(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        hidden = self.config.hidden_size
        return self.get(f"{name}.weight", hidden), self.get(f"{name}.bias", hidden)
