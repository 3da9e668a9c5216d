"""A classifier's own labels in the catalog's words.

``analysis.image.emotion_results`` names its emotions in a closed list (its schema's
``enum``: neutral, happy, sad, …). Face-expression classifiers name theirs as their data
sets did (``fear``, ``Happiness``, ``surprise``, ``contempt``). Each label becomes the
catalog's name it means (case and spelling aside); scores of labels that mean the same
emotion add up, and labels with no name in the catalog (``contempt``) are left out of
the scores: the face's emotion is the likeliest of the emotions the catalog can name,
and its confidence that emotion's score.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from loom.catalog import Catalog

__all__ = ["Vocabulary"]

# Other names data sets use for the catalog's emotions (FER-2013, AffectNet, RAF-DB,
# CK+, RAVDESS …). A catalog name not listed here still maps to itself.
_SYNONYMS = {
    "neutral": ("neutrality",),
    "happy": ("happiness", "joy", "joyful"),
    "sad": ("sadness", "sorrow"),
    "angry": ("anger",),
    "fearful": ("fear", "afraid", "scared"),
    "surprised": ("surprise",),
    "disgusted": ("disgust",),
    "calm": ("calmness",),
}


def _key(label: str) -> str:
    return re.sub(r"[^a-z]", "", label.lower())


@dataclass(frozen=True)
class Vocabulary:
    """The catalog's emotion names, and which model labels mean each."""

    names: tuple[str, ...]
    _by_key: Mapping[str, str] = field(repr=False)

    @classmethod
    def of(cls, catalog: Catalog, type_: str) -> Vocabulary:
        """The ``faces[].emotion`` enum of ``type_``'s schema."""
        face = catalog[type_].data_schema["properties"]["faces"]["items"]
        names = tuple(face["properties"]["emotion"]["enum"])
        by_key = {_key(name): name for name in names}
        for name in names:
            for other in _SYNONYMS.get(name, ()):
                by_key.setdefault(_key(other), name)
        return cls(names, by_key)

    def name(self, label: str) -> str | None:
        """The catalog's name for a model's ``label``; None where it has none."""
        return self._by_key.get(_key(label))

    def scores(self, scores: Mapping[str, Any]) -> dict[str, float]:
        """``scores`` by the model's labels → by the catalog's names (known ones only)."""
        named: dict[str, float] = {}
        for label, score in scores.items():
            name = self.name(label)
            if name is not None:
                named[name] = named.get(name, 0.0) + float(score)
        return {name: min(1.0, max(0.0, score)) for name, score in named.items()}
