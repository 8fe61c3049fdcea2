"""What every benchmark does with its results: name the date and machine, keep the JSON under results/."""

from __future__ import annotations

import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from reference_system.ports import port_is_open

LOOPBACK = {"127.0.0.1", "localhost", "::1"}

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


def loopback_url(variable: str, default: str, what: str) -> str:
    """``$variable`` (or ``default``), refused unless it is on this machine and reachable: a
    benchmark loads what it points at, so it never points past loopback, and a server that is
    not running is named rather than left to a driver's traceback."""
    url = os.environ.get(variable, default)
    parts = urlsplit(url)
    if parts.hostname not in LOOPBACK:
        raise SystemExit(f"{variable} points at {parts.hostname!r}; benchmarks run against loopback only")
    if not port_is_open(url):
        raise SystemExit(
            f"{what} is not running at {parts.hostname}:{parts.port} ({variable}); start it first"
        )
    return url


def loopback_database_url() -> str:
    """PostgreSQL for a benchmark: ``DATABASE_URL`` or the local server."""
    return loopback_url("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test", "PostgreSQL")


def keep(name: str, title: str, date: str, machine: str, table: str) -> None:
    """Put this run on top of ``benchmarks/results/<name>.md`` under OUTPUT; earlier runs stay below."""
    path = OUTPUT / "benchmarks" / "results" / f"{name}.md"
    heading = f"# {title}\n\n"
    earlier = path.read_text().removeprefix(heading) if path.exists() else ""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{heading}## {date} · {machine}\n\n{table}\n\n{earlier}".rstrip() + "\n")
