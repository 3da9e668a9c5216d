"""all-MiniLM-L6-v2 with its packaged weights, run in numpy: the similarities
sentence-transformers publishes for it, semantic sense, unit vectors, batches equal to
single texts, and truncation of long text to the model's 256 tokens."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from functions.embed.encoder import SentenceEncoder, packaged_model
from loom.errors import ConfigError
from tests.functions.embed.conftest import write_tiny_model


def test_the_similarities_sentence_transformers_publishes(minilm: SentenceEncoder) -> None:
    # sentence-transformers' quickstart prints these for all-MiniLM-L6-v2 (4 decimals)
    vectors = minilm.embed(
        ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."]
    )
    published = np.array([[1.0, 0.6660, 0.1046], [0.6660, 1.0, 0.1411], [0.1046, 0.1411, 1.0]])
    assert np.abs(vectors @ vectors.T - published).max() < 6e-4


def test_similar_sentences_are_closer(minilm: SentenceEncoder) -> None:
    cat, rug, revenue = minilm.embed(
        ["The cat sits on the mat", "A cat is sitting on a rug", "Quarterly revenue rose 4%"]
    )
    assert float(cat @ rug) > float(cat @ revenue) + 0.3


def test_vectors_are_unit_length_float32_with_384_dimensions(minilm: SentenceEncoder) -> None:
    assert minilm.dimensions == 384
    vectors = minilm.embed(["one", "two words", "x" * 3000, "Ünïcödé 😀 中文"])
    assert vectors.shape == (4, 384)
    assert vectors.dtype == np.float32
    assert np.abs(np.linalg.norm(vectors, axis=1) - 1).max() < 1e-5


def test_a_batch_gives_what_each_text_gives_alone(minilm: SentenceEncoder) -> None:
    texts = [
        "Weekly planning",
        "Re: slides for Thursday\nLooks good to me, one comment.",
        "Ask HN: How do you keep a personal log? " * 30,
        "hi",
        "Mum's birthday",
    ]
    together = minilm.embed(texts)
    for text, vector in zip(texts, together, strict=True):
        assert np.abs(minilm.embed([text])[0] - vector).max() < 1e-5


def test_long_text_is_cut_to_the_models_256_tokens(minilm: SentenceEncoder) -> None:
    text = " ".join(
        f"Sentence number {i} of a very long page about embeddings." for i in range(3000)
    )
    tokens = minilm.tokenize(text)
    assert minilm.max_tokens == 256
    assert len(tokens.ids) == 256
    assert tokens.truncated
    assert 0 < tokens.chars < len(text)
    # the same tokens as the whole text tokenized, though only its start was
    assert list(tokens.ids) == minilm.tokenizer.encode(text).ids
    # chars: the text's start that the tokens are, to the character
    assert list(minilm.tokenize(text[: tokens.chars]).ids) == list(tokens.ids)
    head, whole = minilm.embed([text[: tokens.chars], text])
    assert np.abs(head - whole).max() < 1e-5  # what lies past the cut changes nothing


def test_text_without_spaces_is_still_cut_right(minilm: SentenceEncoder) -> None:
    text = "x" * 20_000  # one "word": no place to cut before tokenizing, so it is whole
    tokens = minilm.tokenize(text)
    assert list(tokens.ids) == minilm.tokenizer.encode(text).ids
    assert not tokens.truncated
    assert tokens.chars == len(text)


def test_short_text_is_whole(minilm: SentenceEncoder) -> None:
    tokens = minilm.tokenize("The cat sits on the mat  ")
    assert not tokens.truncated
    assert tokens.content == 6
    assert tokens.chars == 25


def test_lone_surrogates_are_embedded_as_replacement_characters(minilm: SentenceEncoder) -> None:
    broken, fixed = minilm.embed(["caf\ud800 menu", "caf\ufffd menu"])
    assert np.abs(broken - fixed).max() < 1e-6


def test_max_tokens_lowers_the_cut(tmp_path: Path) -> None:
    encoder = SentenceEncoder.load(packaged_model(), max_tokens=16)
    assert len(encoder.tokenize("word " * 100).ids) == 16
    with pytest.raises(ConfigError, match=r"not within 3\.\.512"):
        SentenceEncoder.load(packaged_model(), max_tokens=513)


def test_a_directory_that_is_not_a_sentence_transformers_model_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        SentenceEncoder.load(tmp_path / "nowhere")
    model = write_tiny_model(tmp_path / "m")
    (model / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ConfigError, match="cannot read the model's"):
        SentenceEncoder.load(model)
    model = write_tiny_model(tmp_path / "dense")
    (model / "modules.json").write_text(
        '[{"path": "", "type": "sentence_transformers.models.'
        'Transformer"}, {"path": "2_Dense", "type": '
        '"sentence_transformers.models.Dense"}]'
    )
    with pytest.raises(ConfigError, match="Dense' is not supported"):
        SentenceEncoder.load(model)


def test_a_model_without_modules_json_is_mean_pooled(tmp_path: Path) -> None:
    model = write_tiny_model(tmp_path / "m", normalize=False)
    pooled = SentenceEncoder.load(model).embed(["the cat"])
    (model / "modules.json").unlink()
    assert np.array_equal(SentenceEncoder.load(model).embed(["the cat"]), pooled)


def test_the_model_runs_without_torch() -> None:
    code = (
        "import sys; from functions.embed.encoder import SentenceEncoder, packaged_model;"
        "SentenceEncoder.load(packaged_model()).embed(['hello']);"
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@pytest.mark.skipif(
    not (importlib.util.find_spec("torch") and importlib.util.find_spec("transformers")),
    reason="torch and transformers are not installed (they are not in the core install)",
)
def test_it_matches_transformers_where_it_is_installed(minilm: SentenceEncoder) -> None:
    import torch
    from transformers import BertModel

    texts = ["The cat sits on the mat", "Quarterly revenue rose 4%", "word " * 400]
    model = BertModel.from_pretrained(str(packaged_model()), local_files_only=True).eval()
    expected = []
    for text in texts:
        ids = torch.tensor([list(minilm.tokenize(text).ids)])
        with torch.inference_mode():
            states = model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state
        mean = states[0].mean(dim=0)
        expected.append((mean / mean.norm()).numpy())
    assert np.abs(minilm.embed(texts) - np.stack(expected)).max() < 1e-4


def test_a_tokenizer_of_another_model_is_refused(tmp_path: Path) -> None:
    model = write_tiny_model(tmp_path / "m")
    (model / "tokenizer.json").write_bytes((packaged_model() / "tokenizer.json").read_bytes())
    with pytest.raises(ConfigError, match="the tokenizer knows 30522 tokens, the model 24"):
        SentenceEncoder.load(model)
