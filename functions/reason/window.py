"""Utterances out of one device's words events; the open one is kept in the state store.

A ``media.text.transcribed.words`` event holds the words of one speech segment so far,
timed from the segment's start (the event's ``timestamp``); an event with ``is_final``
false is a partial hypothesis that a later event of the same ``segment_id`` replaces.
The window holds the words not yet in an utterance, per segment (a new hypothesis of a
segment replaces its words), and ``floor``: where the last utterance ended.

An utterance ends

- before a word that starts more than ``pause`` after the words before it ended;
- before a word that would make it longer than ``max_seconds`` or ``max_words``;
- with the words of a final segment (everything in the window then ends), unless
  ``final_ends`` is off.

What never changes the window: words before ``floor`` (a segment resent after its
utterance ended, a late event), and a partial whose words end before those already held
for its segment (an older hypothesis delivered again). The last event delivered again is
the state store's business (it gives the state from before it). Words more than
``reset`` before ``floor`` mean the device's clock went back or history is replayed: the
window starts again there (its open words are dropped).

State: ``{"floor": ms, "segments": [{"id", "ref": [type, source, id], "language",
"words": [[start_ms, end_ms, word], …]}]}``, times in ms since the epoch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = ["Heard", "Limits", "Moved", "Utterance", "advance", "iso", "to_ms"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
Word = tuple[int, int, str]


@dataclass(frozen=True)
class Limits:
    pause_ms: int
    max_ms: int
    max_words: int
    reset_ms: int
    final_ends: bool = True  # a final segment ends the utterance


@dataclass(frozen=True)
class Heard:
    """One words event: its segment's words in epoch ms, and where it came from."""

    segment: str
    words: tuple[Word, ...]
    final: bool
    ref: tuple[str, str, str]  # (type, source, id) of the event
    language: str

    @classmethod
    def from_data(cls, data: dict[str, Any], ref: tuple[str, str, str]) -> Heard:
        base = to_ms(data["timestamp"])
        words = sorted(
            (base + w["start_ms"], base + max(w["start_ms"], w["end_ms"]), w["word"])
            for w in data["words"]
        )
        return cls(str(data["segment_id"]), tuple(words), bool(data["is_final"]), ref,
                   str(data["language"]))  # fmt: skip


@dataclass(frozen=True)
class Utterance:
    """Words that make one utterance, and the events they came from."""

    words: tuple[Word, ...]
    refs: tuple[tuple[str, str, str], ...]
    language: str

    @property
    def text(self) -> str:
        return " ".join(w[2] for w in self.words)

    @property
    def start_ms(self) -> int:
        return self.words[0][0]

    @property
    def end_ms(self) -> int:
        return max(w[1] for w in self.words)


@dataclass(frozen=True)
class Moved:
    state: dict[str, Any]
    closed: list[Utterance] = field(default_factory=list)
    ignored: str | None = None  # why the event changed nothing
    restarted: bool = False  # the words went back in time by more than the reset: start again


def advance(state: dict[str, Any], heard: Heard, limits: Limits) -> Moved:
    """The window after ``heard``, and the utterances it ended."""
    floor: int | None = state.get("floor")
    segments: list[dict[str, Any]] = [dict(s) for s in state.get("segments", [])]
    restarted = bool(heard.words) and floor is not None and (
        heard.words[-1][1] < floor - limits.reset_ms
    )  # fmt: skip
    if restarted:
        floor, segments = None, []
    known = next((s for s in segments if s["id"] == heard.segment), None)
    words = [w for w in heard.words if floor is None or _mid(w) >= floor]
    if known is None and heard.words and not words:
        return Moved(state, ignored="late: its words are in utterances that ended")
    if known is not None and not heard.final and known["words"] and (
        not words or words[-1][1] < max(w[1] for w in known["words"])
    ):  # fmt: skip
        return Moved(state, ignored="stale: an older hypothesis of its segment")
    if known is None and not words:
        return Moved(state, ignored="no words")
    entry = {"id": heard.segment, "ref": list(heard.ref), "language": heard.language,
             "words": [list(w) for w in words]}  # fmt: skip
    segments = [entry if s is known else s for s in segments]
    if known is None:
        segments.append(entry)
    pending = sorted((w[0], w[1], w[2], i) for i, s in enumerate(segments) for w in s["words"])
    closed, rest = _cut(pending, limits, heard.final and limits.final_ends)
    utterances = [_utterance(part, segments) for part in closed]
    if closed:
        floor = max(floor or 0, max(w[1] for part in closed for w in part))
    kept = []
    for i, segment in enumerate(segments):
        left = [[s, e, w] for s, e, w, j in rest if j == i]
        if left:
            kept.append({**segment, "words": left})
    return Moved({"floor": floor, "segments": kept}, utterances, restarted=restarted)


def _cut(
    pending: list[tuple[int, int, str, int]], limits: Limits, final: bool
) -> tuple[list[list[tuple[int, int, str, int]]], list[tuple[int, int, str, int]]]:
    closed: list[list[tuple[int, int, str, int]]] = []
    current: list[tuple[int, int, str, int]] = []
    end = 0
    for word in pending:
        if current and (
            word[0] - end > limits.pause_ms
            or max(end, word[1]) - current[0][0] > limits.max_ms
            or len(current) >= limits.max_words
        ):
            closed.append(current)
            current = []
        end = max(end, word[1]) if current else word[1]
        current.append(word)
    if final and current:
        closed.append(current)
        current = []
    return closed, current


def _utterance(part: list[tuple[int, int, str, int]], segments: list[dict[str, Any]]) -> Utterance:
    order = sorted({j for *_, j in part})
    refs = tuple((str(r[0]), str(r[1]), str(r[2])) for r in (segments[j]["ref"] for j in order))
    return Utterance(tuple((s, e, w) for s, e, w, _ in part), refs,
                     str(segments[order[-1]]["language"]))  # fmt: skip


def _mid(word: Word) -> float:
    """A word is new when its middle is past where the last utterance ended: the same
    word timed a little differently by a later hypothesis is not."""
    return (word[0] + word[1]) / 2


def to_ms(timestamp: str) -> int:
    """An RFC 3339 time as ms since the epoch."""
    when = datetime.fromisoformat(timestamp.upper())
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    return round((when - _EPOCH) / timedelta(milliseconds=1))


def iso(ms: int) -> str:
    """ms since the epoch as RFC 3339 in UTC, to the millisecond."""
    return (_EPOCH + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds")[:-6] + "Z"
