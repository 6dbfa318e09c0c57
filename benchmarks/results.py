"""Where every benchmark writes: a JSON file for comparing runs and a Markdown table for people."""

from __future__ import annotations

import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(os.environ.get("BENCH_RESULTS_DIR", Path(__file__).parent / "results"))


def machine() -> str:
    return f"{platform.machine()}, Python {platform.python_version()}, {os.cpu_count()} CPUs"


def write_results(name: str, title: str, data: object, lines: list[str]) -> None:
    """Write results/NAME.json and results/NAME.md (dated, with the machine) and print the table."""
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": name, "date": stamp, "machine": machine(), "results": data}
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    table = "\n".join(lines)
    (RESULTS / f"{name}.md").write_text(f"# {title}\n\n{stamp}, {machine()}\n\n{table}\n", encoding="utf-8")
    print(table)
