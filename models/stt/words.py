"""The text stream of a Kyutai STT model as words with start and end times.

The model says one text token per 80 ms frame: mostly padding (``existing_text_padding_id``,
3), then, when a word begins, an end-of-padding token (``end_of_text_padding_id``, 0)
followed by the word's sentencepiece pieces in the next frames. A word starts at the
frame of its first piece and ends where the next word's end-of-padding token (or the
next word) is; the last one ends a second after it started, or where the stream ends.
The text stream lags the audio by the checkpoint's delay, so a frame's time in the audio
is ``frame x 80 ms`` less the delay (and less any silence put before the audio), kept
within the audio.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Word", "words_from_tokens"]


@dataclass(frozen=True)
class Word:
    word: str
    start_ms: int
    end_ms: int

    def as_json(self) -> dict[str, Any]:
        return {"word": self.word, "start_ms": self.start_ms, "end_ms": self.end_ms}


def words_from_tokens(
    tokens: Sequence[int],
    tokenizer: Any,
    *,
    pad_id: int,
    end_of_pad_id: int,
    frame_ms: float,
    offset_ms: float,
    duration_ms: int,
) -> list[Word]:
    """Words of ``tokens`` (one text token per frame, frame 0 first) with times in ms from
    the start of the audio; ``offset_ms`` is the model's delay plus any silence before."""
    vocab = tokenizer.vocab_size()
    spans: list[tuple[list[int], int, int]] = []  # piece ids, first frame, end frame
    ids: list[int] = []
    start = 0

    def close(at: int) -> None:
        nonlocal ids
        if ids:
            spans.append((ids, start, at))
            ids = []

    for frame, token in enumerate(tokens):
        if token == pad_id:
            continue
        if token == end_of_pad_id:
            close(frame)
            continue
        if not 0 <= token < vocab or tokenizer.is_control(token) or tokenizer.is_unknown(token):
            continue
        if not ids or tokenizer.id_to_piece(token).startswith("\u2581"):
            close(frame)
            start = frame
        ids.append(token)
    if ids:
        close(min(len(tokens), start + math.ceil(1000 / frame_ms)))

    def ms(frame: int) -> int:
        return int(min(max(round(frame * frame_ms - offset_ms), 0), duration_ms))

    words = []
    for piece_ids, first, end in spans:
        text = str(tokenizer.decode(piece_ids)).strip()
        if text:
            words.append(Word(text[:200], ms(first), ms(end)))
    return words
