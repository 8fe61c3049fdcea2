"""What every benchmark does with its results: name the date and machine, keep the JSON under results/."""

from __future__ import annotations

import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# BENCH_OUTPUT_DIR moves the results and plots out of the repository (the test suite uses it).
OUTPUT = Path(os.environ.get("BENCH_OUTPUT_DIR", Path(__file__).resolve().parents[1]))


def stamp() -> tuple[str, str]:
    """Today's date (UTC) and the machine, as every published result names them."""
    machine = (
        f"{platform.node()}, {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    return f"{datetime.now(UTC):%Y-%m-%d}", machine


def save(name: str, date: str, machine: str, results: Any) -> None:
    """Write ``benchmarks/results/<name>.json`` under OUTPUT."""
    out = OUTPUT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(
        json.dumps({"date": date, "machine": machine, "results": results}, indent=2) + "\n"
    )
