"""What an answer does to its command's audit row: outcome or progress, and what is kept."""

from __future__ import annotations

import pytest

from functions.commands.handler import RESPONSE_TYPES, Commands, handle
from functions.commands.outcome import TRUNCATED, audit_result, outcome
from functions.commands.settings import CommandsSettings
from loom.catalog import default_catalog
from loom.testing import FunctionHarness, example_event


@pytest.mark.parametrize(
    ("type_", "example", "expected"),
    [
        ("device.response.command.status", "minimal-received", None),
        ("device.response.command.status", "shell-failed", "failed"),
        ("device.response.shell.output", "minimal-running", None),
        ("device.response.file.transfer", "minimal-in-progress", None),
        ("device.response.file.transfer", "pull-completed", "succeeded"),
        ("device.response.screen.capture", "minimal-inline-png", "succeeded"),
        ("device.response.error", "shell-disabled", "failed"),
    ],
)
def test_the_golden_answers(type_: str, example: str, expected: str | None) -> None:
    assert outcome(type_, example_event(type_, name=example).data) == expected


def test_the_last_chunk_of_output_settles_the_command_by_its_exit_code() -> None:
    chunk = {"stdout": "", "stderr": "", "is_final": True}
    assert outcome("device.response.shell.output", {**chunk, "exit_code": 0}) == "succeeded"
    assert outcome("device.response.shell.output", {**chunk, "exit_code": 2}) == "failed"
    killed = {**chunk, "exit_code": None}  # killed by a signal
    assert outcome("device.response.shell.output", killed) == "failed"
    running = {**chunk, "is_final": False, "exit_code": None}
    assert outcome("device.response.shell.output", running) is None


@pytest.mark.parametrize(("status", "expected"), [
    ("succeeded", "succeeded"), ("failed", "failed"), ("rejected", "failed"),
    ("received", None), ("running", None),
])  # fmt: skip
def test_a_status_says_it(status: str, expected: str | None) -> None:
    assert outcome("device.response.command.status", {"status": status}) == expected


def test_long_strings_are_kept_as_a_preview_and_named() -> None:
    data = {"image_data": "A" * 100, "width": 10, "nested": {"a/b": ["x" * 70, "short"]}}
    kept = audit_result(data, max_chars=64)
    assert kept["image_data"] == "A" * 64
    assert kept["nested"]["a/b"] == ["x" * 64, "short"]
    assert kept[TRUNCATED] == ["/image_data", "/nested/a~1b/0"]
    assert audit_result({"stdout": "ok"}, max_chars=64) == {"stdout": "ok"}


def test_it_consumes_every_response_type_of_the_catalog_and_makes_nothing() -> None:
    catalog = default_catalog()
    assert set(RESPONSE_TYPES) == {t.type for t in catalog if t.type.startswith("device.response.")}
    assert handle.spec.consumes == tuple(RESPONSE_TYPES)
    assert handle.spec.produces == ()


async def test_an_answer_that_names_no_command_changes_nothing() -> None:
    # the pool is never asked for: an error of the device's own is about no command
    state = Commands(CommandsSettings(), pool=None)  # type: ignore[arg-type]
    harness = FunctionHarness(handle, state=state)
    assert await harness.call_example("device.response.error", name="minimal") == []
