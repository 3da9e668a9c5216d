"""Schemathesis against the service's own OpenAPI document: no 5xx, no answer off-spec."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from functions.ingest import IngestSettings
from tests.integration.ingest_helpers import running_server

CHECKS = ",".join([
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
])  # fmt: skip


EXAMPLES = os.environ.get("LOOM_SCHEMATHESIS_EXAMPLES", "25")


def test_schemathesis_finds_no_server_error_or_spec_violation(
    ingest_settings: IngestSettings, admin: str, tmp_path: Path
) -> None:
    with running_server(ingest_settings) as url:
        done = subprocess.run(
            [
                sys.executable, "-m", "schemathesis.cli", "run", f"{url}/openapi.json",
                "--checks", CHECKS, "--max-examples", EXAMPLES,
                "--max-failures", "20", "--continue-on-failure",
                "--phases", "examples,coverage,fuzzing", "--seed", "20261125",
                "--header", f"Authorization: Bearer {admin}", "--request-timeout", "20",
                "--generation-deterministic", "--no-color",
            ],
            capture_output=True, text=True, timeout=600, check=False, cwd=tmp_path,
        )  # fmt: skip
    report = done.stdout[-6000:] + done.stderr[-2000:]
    assert done.returncode == 0, report
    assert "No issues found" in done.stdout or "passed" in done.stdout, report
