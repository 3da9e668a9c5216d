"""What the model writes: the part of ``media.image.analysis.minicpm_results`` that a
vision-language model can fill, as a JSON Schema in which every string and array is
bounded, so that generation forced into it always ends, within a number of tokens known
in advance.

It is derived from the catalog's schema, never retyped: the fields Loom fills itself
(who, when, from what, how long, by which model, and answers to questions, which this
server is not asked) are removed; every string gets a ``maxLength`` and every array a
``maxItems`` no larger than the catalog's and no larger than the settings allow; and
what a constraint on tokens cannot bound is left out where the catalog allows it:
numbers (outlines turns a number into an unbounded run of digits and ignores
``minimum``/``maximum``), so objects are named without ``bbox`` or ``confidence``.
Every property left is required, so each answer has the same shape.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from loom.catalog import Catalog, default_catalog
from models.vlm.settings import VlmSettings

__all__ = ["LOOM_FIELDS", "RESULTS", "describe_fields", "fillable_schema", "max_chars"]

RESULTS = "media.image.analysis.minicpm_results"
LOOM_FIELDS = frozenset(
    {"schema_version", "device_id", "timestamp", "derived_from", "processing_ms", "model",
     "answers"}
)  # fmt: skip
_LONG_TEXT = {"caption": "vlm_caption_max_chars", "ocr_text": "vlm_ocr_max_chars"}
_SEPARATOR = 2  # a comma or colon, and a space some backends put after it


def fillable_schema(settings: VlmSettings, catalog: Catalog | None = None) -> dict[str, Any]:
    """The model's part of the results schema, bounded as ``settings`` say."""
    catalog = catalog or default_catalog()
    whole = catalog.bundled_schema(RESULTS)
    part = _object(whole, settings, drop=LOOM_FIELDS)
    needed = set(whole.get("required", ())) - LOOM_FIELDS
    if part is None or not needed <= set(part["properties"]):
        raise ValueError(
            f"the fields of {RESULTS} that the model must fill ({sorted(needed)}) cannot all "
            "be bounded strings, arrays and objects"
        )
    return part


def max_chars(schema: dict[str, Any]) -> int:
    """The longest JSON text ``schema`` allows (no whitespace but one space after each
    separator). Every token the model writes adds at least one character, so the answer
    ends within this many tokens plus the end-of-sequence one."""
    kind = schema.get("type")
    if "enum" in schema:
        return max(len(json.dumps(v)) for v in schema["enum"])
    if kind == "string":
        return 2 + 2 * int(schema["maxLength"])  # quotes; an escape takes two characters
    if kind == "boolean":
        return len("false")
    if kind == "array":
        count = int(schema["maxItems"])
        return 2 + count * max_chars(schema["items"]) + max(count - 1, 0) * _SEPARATOR
    if kind == "object":
        props = schema["properties"]
        inner = sum(len(json.dumps(k)) + _SEPARATOR + max_chars(v) for k, v in props.items())
        return 2 + inner + max(len(props) - 1, 0) * _SEPARATOR
    raise ValueError(f"no bound on the length of {schema!r}")


def describe_fields(schema: dict[str, Any]) -> str:
    """One line per field of ``schema``, from the catalog's own descriptions (for prompts)."""
    lines = []
    for name, prop in schema["properties"].items():
        about = prop.get("description", "").rstrip(".")
        if prop.get("type") == "array":
            item = prop["items"]
            fields = ", ".join(item.get("properties", {})) or item.get("type", "")
            lines.append(f"- {name}: {about} (at most {prop['maxItems']}; each with {fields})")
        elif prop.get("type") == "string":
            lines.append(f"- {name}: {about} (at most {prop['maxLength']} characters)")
        else:
            lines.append(f"- {name}: {about}")
    return "\n".join(lines)


def _bounded(node: dict[str, Any], name: str, settings: VlmSettings) -> dict[str, Any] | None:
    kind = node.get("type")
    if "enum" in node or kind == "boolean":
        return copy.deepcopy(node)
    if kind == "string":
        if "pattern" in node or "format" in node:
            return None  # a length bound would not say which strings are valid
        own = int(getattr(settings, _LONG_TEXT.get(name, "vlm_name_max_chars")))
        limit = min(int(node.get("maxLength", own)), own)
        if limit < int(node.get("minLength", 0)):
            return None
        return {**node, "maxLength": limit}
    if kind == "array":
        items = node.get("items")
        bounded = _bounded(items, name, settings) if isinstance(items, dict) else None
        if bounded is None:
            return None
        limit = min(int(node.get("maxItems", settings.vlm_max_objects)), settings.vlm_max_objects)
        if limit < int(node.get("minItems", 0)):
            return None
        return {**node, "items": bounded, "maxItems": limit}
    if kind == "object":
        return _object(node, settings)
    return None  # numbers, integers, null, unions: nothing bounds them in a token mask


def _object(
    node: dict[str, Any], settings: VlmSettings, drop: frozenset[str] = frozenset()
) -> dict[str, Any] | None:
    required = set(node.get("required", ()))
    props: dict[str, Any] = {}
    for name, prop in node.get("properties", {}).items():
        if name in drop:
            continue
        bounded = _bounded(prop, name, settings)
        if bounded is None:
            if name in required:
                return None  # the catalog needs it and the model cannot be held to it
            continue
        props[name] = bounded
    if not props:
        return None
    kept = {k: v for k, v in node.items() if k not in ("properties", "required")}
    return {**kept, "properties": props, "required": list(props), "additionalProperties": False}
