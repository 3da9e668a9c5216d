"""The README's catalog table is generated; it must match the catalog."""

from __future__ import annotations

from pathlib import Path

from loom.catalog import default_catalog
from loom.docs import replace_catalog_section

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_catalog_table_is_up_to_date() -> None:
    text = README.read_text()
    assert replace_catalog_section(text, default_catalog()) == text, (
        "README's catalog table is stale: run `uv run loom catalog --write-readme README.md`"
    )


def test_table_has_a_row_per_type() -> None:
    catalog = default_catalog()
    text = README.read_text()
    for t in catalog:
        assert f"| `{t.type}` |" in text
