"""`loom export` and `loom delete` refusing what they cannot do, in words, without a database."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

NOWHERE = "postgresql://loom@127.0.0.1:9/loom"  # the discard port: nothing listens


def loom(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loom", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200", "LOOM_DATABASE_URL": NOWHERE},
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--type", "device.sensor.gps.rawr"], "did you mean 'device.sensor.gps.raw'?"),
        (["--type", "device.command.shell.execute"], "the catalog gives it no table"),
        (["--type", "device.sensor.gps.raw", "--from", "monday"], "--from 'monday' is not an"),
        (
            ["--type", "device.sensor.gps.raw", "--from", "2026-11-25T10:00:00+01:00",
             "--to", "2026-11-25T09:00:00Z"],
            "must be before to",
        ),
        (["--type", "device.sensor.gps.raw"], "cannot connect to LOOM_DATABASE_URL's database"),
    ],
)  # fmt: skip
def test_export_errors_are_one_clear_line(args: list[str], words: str) -> None:
    done = loom("export", *args)
    assert done.returncode == 2, done.stderr
    assert "error:" in done.stderr
    assert words in " ".join(done.stderr.split())
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


def test_export_knows_its_formats() -> None:
    done = loom("export", "--type", "device.sensor.gps.raw", "--format", "csv")
    assert done.returncode == 2
    assert "'csv' is not one of 'jsonl', 'parquet'" in done.stderr


def test_delete_without_a_database_says_so() -> None:
    done = loom("delete", "--device", "phone-1", "--yes")
    assert done.returncode == 2
    assert "cannot connect to LOOM_DATABASE_URL's database" in " ".join(done.stderr.split())
