"""The in-process backend: a tiny random-weight Mistral and a tokenizer built here, saved
to a directory and loaded by the backend's own loading code. Whatever its random weights
prefer, outlines holds it to the schema: every answer is a valid result.

The tokenizer's vocabulary is the printable ASCII characters plus BPE merges learnt from
the prompts, so a token is at least one character and the longest answer the bounded
schema allows (about 450 characters with the limits below) fits in
LOOM_REASON_MAX_TOKENS=512: an answer cut there would not be JSON, so a valid answer
is one that ended by itself.
"""

from __future__ import annotations

import string
import time
from pathlib import Path
from typing import Any

import pytest

from functions.reason.prompts import DOCUMENT_SYSTEM, UTTERANCE_SYSTEM
from loom.catalog import default_catalog
from loom.errors import ConfigError
from loom.runtime.model_client import ModelRefused
from loom.testing import assert_emitted, example_event
from tests.functions.reason.conftest import RESULT, reasoning, said

pytest.importorskip("transformers")
pytest.importorskip("outlines")
tokenizers = pytest.importorskip("tokenizers")

CHAT_TEMPLATE = (
    "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}[assistant] {% endif %}"
)
DOCUMENTS = [
    "task.url.processed.twitter_archived",
    "task.url.processed.hackernews_archived",
    "task.url.processed.pdf_extracted",
    "task.url.processed.web_archived",
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny MistralForCausalLM with random weights and its tokenizer, as files."""
    import torch
    from transformers import MistralConfig, MistralForCausalLM, PreTrainedTokenizerFast

    directory = tmp_path_factory.mktemp("tiny-mistral")
    chars = [c for c in string.printable if c not in "\r\x0b\x0c"]
    bpe = tokenizers.Tokenizer(tokenizers.models.BPE(unk_token="<unk>"))
    bpe.decoder = tokenizers.decoders.Fuse()
    trainer = tokenizers.trainers.BpeTrainer(
        vocab_size=600, special_tokens=["<unk>", "<s>", "</s>"], initial_alphabet=chars,
        show_progress=False,
    )  # fmt: skip
    corpus = [UTTERANCE_SYSTEM, DOCUMENT_SYSTEM, "context_type summary entities confidence"]
    bpe.train_from_iterator(corpus * 4, trainer)
    tokenizer = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
        chat_template=CHAT_TEMPLATE,
    )  # fmt: skip
    tokenizer.save_pretrained(directory)
    torch.manual_seed(0)
    config = MistralConfig(
        vocab_size=bpe.get_vocab_size(), hidden_size=32, intermediate_size=64,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=8,
        max_position_embeddings=4096, bos_token_id=1, eos_token_id=2, pad_token_id=2,
    )  # fmt: skip
    MistralForCausalLM(config).save_pretrained(directory)
    return directory


def _settings(model_dir: Path, **values: Any) -> dict[str, Any]:
    return {"reason_backend": "transformers", "reason_model_dir": model_dir,
            "reason_max_chars": 40, "reason_max_items": 2, "reason_max_tokens": 512,
            "reason_temperature": 1.0, "reason_document_max_chars": 600,
            "reason_min_utterance_words": 1, **values}  # fmt: skip


async def test_every_answer_is_a_valid_result(model_dir: Path) -> None:
    catalog = default_catalog()
    events = [
        said("phone", "a", 0, "let's move the stand-up to ten"),
        said("laptop", "b", 5, "the build is green again, ship it"),
        *(example_event(kind) for kind in DOCUMENTS),
    ]
    started = time.perf_counter()
    async with reasoning(**_settings(model_dir)) as (harness, reason):
        assert reason.backend.name == model_dir.name
        results = [assert_emitted(await harness.call(e), RESULT, count=1)[0] for e in events]
    seconds = time.perf_counter() - started
    for result in results:
        assert catalog.violations(RESULT, result.data) == []
        assert len(result.data["summary"]) <= 40
        assert len(result.data["entities"]) <= 2
        assert result.data["model"] == {"name": model_dir.name}
    assert seconds < 120, f"{len(events)} answers took {seconds:.0f} s"


async def test_a_prompt_longer_than_the_context_is_refused(model_dir: Path) -> None:
    event = example_event("task.url.processed.web_archived", name="article-with-metadata")
    event = type(event)(
        type=event.type, data={**event.data, "text": "lorem ipsum " * 2000}, source=event.source
    )
    async with reasoning(**_settings(model_dir, reason_document_max_chars=20_000)) as (h, _):
        with pytest.raises(ModelRefused, match="context of 4096 tokens"):
            await h.call(event)


async def test_a_directory_without_a_model_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"holds no config\.json"):
        async with reasoning(**_settings(tmp_path)):
            pass
