"""Every benchmark `make bench` runs can be loaded (`make bench` itself is not in CI)."""

from __future__ import annotations

import importlib

import pytest

from bench.__main__ import BENCHES


@pytest.mark.parametrize("name", BENCHES)
def test_each_benchmark_loads_with_a_title_and_a_run(name: str) -> None:
    module = importlib.import_module(f"bench.{name}")
    assert module.TITLE
    assert callable(module.run)
