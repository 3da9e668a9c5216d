"""The `loom` command as a user runs it: a real process, its exit code and its words."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from loom.catalog import default_catalog, default_schemas_dir


def loom(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loom", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        timeout=60,
        check=False,
    )


def test_catalog_prints_every_type() -> None:
    done = loom("catalog", "--markdown")
    assert done.returncode == 0, done.stderr
    for t in default_catalog():
        assert f"`{t.type}`" in done.stdout


def test_bad_catalog_fails_naming_file_and_field(tmp_path: Path) -> None:
    root = tmp_path / "schemas"
    shutil.copytree(default_schemas_dir(), root)
    catalog = root / "catalog.yaml"
    catalog.write_text(catalog.read_text().replace("partitions: 6,", "partitions: six,", 1))
    done = loom("catalog", "--catalog-dir", str(root))
    assert done.returncode == 2
    assert "error:" in done.stderr
    assert str(catalog) in done.stderr.replace("\n", "")
    assert "types[0] (device.audio.raw).partitions" in done.stderr
    assert "Traceback" not in done.stderr


def test_bad_setting_fails_at_start_naming_the_variable() -> None:
    done = loom("catalog", env={"LOOM_KAFKA_DEFAULT_PARTITIONS": "many"})
    assert done.returncode == 2
    assert "LOOM_KAFKA_DEFAULT_PARTITIONS='many'" in done.stderr
    assert "Traceback" not in done.stderr
