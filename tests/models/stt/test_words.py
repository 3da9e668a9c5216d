"""Text tokens, one per 80 ms frame, to words with start and end times."""

from __future__ import annotations

import pytest

sentencepiece = pytest.importorskip("sentencepiece", reason="needs the models extra")

from models.stt.words import words_from_tokens  # noqa: E402
from tests.models.stt.tiny import train_tokenizer  # noqa: E402

PAD, EPAD = 3, 0


@pytest.fixture(scope="module")
def spm() -> object:
    return sentencepiece.SentencePieceProcessor(model_proto=train_tokenizer())


def words(tokens: list[int], spm: object, **kw: int) -> list[tuple[str, int, int]]:
    options = {"frame_ms": 80, "offset_ms": 500, "duration_ms": 10_000} | kw
    found = words_from_tokens(tokens, spm, pad_id=PAD, end_of_pad_id=EPAD, **options)
    return [(w.word, w.start_ms, w.end_ms) for w in found]


def test_a_word_starts_at_its_first_piece_and_ends_where_the_next_word_is_announced(
    spm: object,
) -> None:
    quick, brown = spm.encode("quick"), spm.encode("brown")  # type: ignore[attr-defined]
    tokens = [PAD] * 10 + [EPAD] + quick + [PAD] * 4 + [EPAD] + brown + [PAD] * 30
    start_quick = 11 * 80 - 500
    start_brown = (11 + len(quick) + 5) * 80 - 500
    assert words(tokens, spm) == [
        ("quick", start_quick, (11 + len(quick) + 4) * 80 - 500),
        ("brown", start_brown, start_brown + 1040),  # the last word: at most ~1 s
    ]


def test_pieces_without_a_word_marker_join_the_word_before(spm: object) -> None:
    pieces = spm.encode("the lazy dog")  # type: ignore[attr-defined]
    tokens = [PAD] * 8 + [EPAD] + pieces + [PAD] * 3
    found = words(tokens, spm, offset_ms=0)
    assert [w for w, _, _ in found] == ["the", "lazy", "dog"]
    assert [s for _, s, _ in found] == sorted(s for _, s, _ in found)
    assert found[-1][2] == len(tokens) * 80  # the stream's end


def test_times_stay_within_the_audio_and_control_tokens_are_skipped(spm: object) -> None:
    hello = spm.encode("hello")  # type: ignore[attr-defined]
    tokens = [EPAD] + hello + [1, 2, PAD, EPAD] + hello + [PAD] * 40 + [EPAD] + hello
    found = words(tokens, spm, duration_ms=2000)
    assert [w for w, _, _ in found] == ["hello"] * 3
    assert found[0][1] == 0  # before the delay: clamped to the start
    assert found[-1][1] == found[-1][2] == 2000  # said in the flush after the audio
    assert words([PAD] * 20 + [EPAD] + [PAD] * 5, spm) == []
