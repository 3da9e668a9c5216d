"""What the model writes of an ``analysis.inferred_context.mistral_results`` event, as a
JSON Schema derived from the catalog's.

The model fills every property of the catalog's schema except those Loom fills itself
(:data:`LOOM_FIELDS`: ids, times, device, sources, model name), with the catalog's own
types, enums, descriptions and required list. Two changes make constrained generation
end: every string the model writes gets a ``maxLength`` and every list a ``maxItems``
(the tighter of the catalog's and the settings'), so the longest answer has a known
length whatever the model prefers.
"""

from __future__ import annotations

import copy
from typing import Any

from loom.catalog import Catalog

__all__ = ["LOOM_FIELDS", "RESULT", "answer_schema", "bounded", "field_guide", "finite"]

RESULT = "analysis.inferred_context.mistral_results"
# Filled by Loom, never asked of the model: which device, when, from which events, by
# which model. Every other property of the result's schema is the model's answer.
LOOM_FIELDS = frozenset(
    {"schema_version", "device_id", "timestamp", "derived_from", "window_start",
     "window_end", "inputs", "model"}
)  # fmt: skip
_GRID = 100  # a bounded number becomes one of this many steps (+1) between its bounds


def answer_schema(catalog: Catalog, *, max_chars: int, max_items: int) -> dict[str, Any]:
    """The part of the result's catalog schema the model fills, bounded (see the module)."""
    full = catalog.bundled_schema(RESULT)
    properties = {k: v for k, v in full["properties"].items() if k not in LOOM_FIELDS}
    schema = {
        "type": "object",
        "properties": properties,
        "required": [k for k in full.get("required", []) if k in properties],
        "additionalProperties": False,
    }
    return bounded(schema, max_chars=max_chars, max_items=max_items)


def bounded(schema: dict[str, Any], *, max_chars: int, max_items: int) -> dict[str, Any]:
    """``schema`` with every free-text string at most ``max_chars`` long and every array at
    most ``max_items`` long (a tighter bound of its own is kept)."""

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(v) for v in node]
        if not isinstance(node, dict):
            return node
        out = {k: walk(v) for k, v in node.items()}
        if out.get("type") == "string" and not {"enum", "const"} & out.keys():
            out["maxLength"] = min(out.get("maxLength", max_chars), max_chars)
            if out.get("minLength", 0) > out["maxLength"]:
                out["minLength"] = out["maxLength"]
        if out.get("type") == "array":
            out["maxItems"] = min(out.get("maxItems", max_items), max_items)
        return out

    result: dict[str, Any] = walk(schema)
    return result


def finite(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` for a regex-constrained decoder (outlines): a number there may have any
    count of digits and ignores ``minimum``/``maximum``, so a number with both bounds
    becomes one of 101 values evenly between them (0, 0.01, … 1 for a confidence), and an
    integer with both bounds (at most 1000 apart) one of those integers."""

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(v) for v in node]
        if not isinstance(node, dict):
            return node
        out = {k: walk(v) for k, v in node.items()}
        low, high = out.get("minimum"), out.get("maximum")
        if "enum" in out or not isinstance(low, int | float) or not isinstance(high, int | float):
            return out
        if out.get("type") == "number" and high > low:
            out["enum"] = sorted(
                {round(low + (high - low) * i / _GRID, 6) for i in range(_GRID + 1)}
            )
        elif out.get("type") == "integer" and 0 <= high - low <= 1000:
            out["enum"] = list(range(int(low), int(high) + 1))
        return out

    result: dict[str, Any] = walk(copy.deepcopy(schema))
    return result


def field_guide(schema: dict[str, Any]) -> str:
    """The fields of ``schema`` as lines for a prompt: name, meaning, allowed values."""
    lines = []
    required = set(schema.get("required", []))
    for name, prop in schema.get("properties", {}).items():
        optional = "" if name in required else " (optional)"
        lines.append(f"- {name}{optional}: {_describe(prop)}")
    return "\n".join(lines)


def _describe(prop: dict[str, Any]) -> str:
    text = str(prop.get("description", "")).rstrip(".")
    kind = prop.get("type")
    if "enum" in prop:
        text += "; one of: " + ", ".join(str(v) for v in prop["enum"])
    elif kind == "string" and "maxLength" in prop:
        text += f"; text of at most {prop['maxLength']} characters"
    elif kind in ("number", "integer") and "minimum" in prop and "maximum" in prop:
        text += f"; a number from {prop['minimum']} to {prop['maximum']}"
    elif kind == "array":
        items = prop.get("items", {})
        most = f"at most {prop['maxItems']} " if "maxItems" in prop else ""
        if items.get("type") == "object":
            parts = ", ".join(
                f"{k} ({_describe(v)})" for k, v in items.get("properties", {}).items()
            )
            text += f"; a list of {most}objects with {parts}"
        else:
            text += f"; a list of {most}values"
    return text
