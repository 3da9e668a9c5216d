"""Run the benchmarks against real local services and write their tables."""

from __future__ import annotations

import importlib
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from loom.logging import configure_logging
from loom.services import LocalServices

BENCHES = [
    "kafka_produce",
    "ingest",
    "runtime",
    "store",
    "power",
    "motion",
    "apps",
    "vad",
    "embed",
    "georegion",
    "motion_e2e",
    "stt_gpu",
]
RESULTS = Path(__file__).resolve().parent / "results"


def main(names: list[str]) -> None:
    configure_logging("WARNING")
    console = Console()
    RESULTS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, LocalServices(Path(tmp)) as services:
        for name in names or BENCHES:
            module = importlib.import_module(f"bench.{name}")
            started = time.time()
            rows = module.run(services)
            table = Table(title=module.TITLE)
            for column in rows[0]:
                table.add_column(column)
            for row in rows:
                table.add_row(
                    *(f"{v:,.2f}" if isinstance(v, float) else str(v) for v in row.values())
                )
            console.print(table)
            (RESULTS / f"{name}.json").write_text(json.dumps({
                "title": module.TITLE, "rows": rows, "when": time.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "seconds": round(time.time() - started, 1), "machine": platform.node(),
                "cpus": __import__("os").cpu_count(), "python": sys.version.split()[0],
            }, indent=2) + "\n")  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1:])
