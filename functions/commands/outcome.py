"""What a device's answer says about its command: an outcome or progress, and the part of
the answer the audit row keeps.

Rules, in order: an answer with a ``status`` says it (succeeded or completed: succeeded;
failed or rejected: failed; anything else, such as received, running or in_progress, is
progress); an answer with ``is_final`` (output in chunks) is progress until the last
chunk, whose ``exit_code`` 0 is success; an ``error`` answer is a failure; any other
answer (a screen capture, say) is the command's result, so it succeeded.
"""

from __future__ import annotations

from typing import Any, Literal

__all__ = ["TRUNCATED", "Outcome", "audit_result", "outcome"]

Outcome = Literal["succeeded", "failed"]
_STATUS: dict[str, Outcome] = {
    "succeeded": "succeeded",
    "completed": "succeeded",
    "failed": "failed",
    "rejected": "failed",
}
TRUNCATED = "loom_truncated"  # lists the JSON pointers of strings cut short


def outcome(event_type: str, data: dict[str, Any]) -> Outcome | None:
    """The command's outcome by this answer, or None if the answer is progress."""
    status = data.get("status")
    if isinstance(status, str):
        return _STATUS.get(status)
    if "is_final" in data:
        if not data["is_final"]:
            return None
        return "succeeded" if data.get("exit_code") == 0 else "failed"
    if event_type.rsplit(".", 1)[-1] == "error":
        return "failed"
    return "succeeded"


def audit_result(data: dict[str, Any], max_chars: int) -> dict[str, Any]:
    """``data`` with every string longer than ``max_chars`` cut to that length (inline
    images and long output stay in the answer's own table; the audit keeps a preview)."""
    cut: list[str] = []

    def shorten(value: Any, pointer: str) -> Any:
        if isinstance(value, str) and len(value) > max_chars:
            cut.append(pointer)
            return value[:max_chars]
        if isinstance(value, dict):
            return {k: shorten(v, f"{pointer}/{_escape(k)}") for k, v in value.items()}
        if isinstance(value, list):
            return [shorten(v, f"{pointer}/{i}") for i, v in enumerate(value)]
        return value

    result: dict[str, Any] = shorten(data, "")
    if cut:
        result[TRUNCATED] = cut
    return result


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")
