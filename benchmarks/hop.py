"""The hop, lever by lever: pg_data_service as deployed against a minimal FastAPI + asyncpg service.

Run: ``uv run python benchmarks/hop.py`` (needs PostgreSQL on loopback and ``wrk``).

Every set-up is its own process (uvicorn with uvloop and httptools, one worker, as the services
are deployed, unless the set-up is about the server), started
in turn against a scratch database and measured with ``wrk`` on
``GET /users/{id}``: requests per second at concurrency 16 (the one worker is then CPU-bound,
so 1/throughput is its CPU per request) and p50 at concurrency 1. A direct asyncpg read is the
floor. ``BENCH_ROUNDS`` interleaved rounds (3); each set-up's median round is reported, every
ratio against the minimal service *of the same round*.

The minimal service changes its server (uvicorn on the standard asyncio loop and h11, uvicorn's
plain defaults; granian; two uvicorn workers) or gains one lever at a time
(``minimal_service.py``): an ORM session or SQLAlchemy Core instead of asyncpg, a pydantic
response model or pydantic's own JSON bytes, bearer auth, a dependency written as a plain ``def``,
RED metrics, the whole observability stack with every request traced. The data service runs
as deployed: auth, validation, RED metrics, tracing at the default sampling (every request)
exported over OTLP/HTTP to a local sink; then once more with OpenTelemetry's SDK disabled, to
split what tracing costs in the real service.

Prints a Markdown table, writes ``benchmarks/results/hop.json``, adds the table on top of
``benchmarks/results/hop.md`` (earlier runs stay below it) and draws a plot to
``docs/assets/benchmarks/hop.png``. ``BENCH_SCALE`` shortens every wrk run; below 0.1 (the
test suite's check that the script works) only the minimal service and the data service run.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shutil
import subprocess
import sys
import urllib.request
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
import matplotlib
from http_clients import SERVERS, TOKEN, database_with_a_user, exited, measure, start_service
from observability_overhead import start_sink
from publishing import OUTPUT, keep, loopback_database_url, save, stamp

from reference_system.ports import free_port
from reference_system.waiting import eventually_blocking

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # the Agg backend is chosen above, before this import

MINIMAL, SERVICE = "minimal FastAPI + asyncpg", "pg_data_service"
ASYNCIO_H11, GRANIAN, WORKERS = "minimal on asyncio + h11", "minimal under granian", "minimal, 2 workers"
APP = [arg for arg in SERVERS[MINIMAL] if arg not in ("--loop", "uvloop", "--http", "httptools")]
# The server's levers, on the minimal service (uvicorn with uvloop and httptools, as every service runs)
SERVERS_TOO = SERVERS | {
    ASYNCIO_H11: [*APP, "--loop", "asyncio", "--http", "h11"],  # uvicorn's defaults without the two
    GRANIAN: [
        "-m",
        "granian",
        "--interface",
        "asgi",
        "--loop",
        "uvloop",
        "--working-dir",
        str(Path(__file__).parent),
        "--log-level",
        "warning",
        "minimal_service:app",
    ],
    WORKERS: [*SERVERS[MINIMAL], "--workers", "2"],
}
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
SCALE = float(os.environ.get("BENCH_SCALE", "1"))
SECONDS = max(1, round(10 * SCALE))  # per wrk run
# name: (server, settings). Every lever on its own, then the real service.
SETUPS: dict[str, tuple[str, dict[str, str]]] = {
    "minimal": (MINIMAL, {}),
    "− uvloop and httptools (asyncio + h11)": (ASYNCIO_H11, {}),
    "granian instead of uvicorn": (GRANIAN, {}),
    "2 worker processes": (WORKERS, {}),
    "+ ORM session read": (MINIMAL, {"READ": "orm"}),
    "+ SQLAlchemy Core read": (MINIMAL, {"READ": "core"}),
    "+ pydantic response model": (MINIMAL, {"RESPONSE": "model"}),
    "+ pydantic straight to JSON bytes": (MINIMAL, {"RESPONSE": "bytes"}),
    "+ bearer auth": (MINIMAL, {"AUTH": "1"}),
    "+ a def dependency": (MINIMAL, {"DEPENDENCY": "def"}),
    "+ RED metrics": (MINIMAL, {"OBSERVE": "metrics"}),
    "+ observed, every request traced": (MINIMAL, {"OBSERVE": "1"}),
    "pg_data_service, telemetry off": (SERVICE, {"OTEL_SDK_DISABLED": "true"}),
    "pg_data_service as deployed": (SERVICE, {}),
}
# The write (POST /orders, idempotency key and outbox row in one transaction), on these.
WRITES = ("minimal", "pg_data_service, telemetry off", "pg_data_service as deployed")
if SCALE < 0.1:  # a run that only proves the script works (the test suite's) measures the two ends
    SETUPS = {name: SETUPS[name] for name in ("minimal", "pg_data_service as deployed")}
    WRITES = ("minimal", "pg_data_service as deployed")
POST_ORDERS = Path(__file__).with_name("post_orders.lua")
WRK_LATENCY = re.compile(r"^\s+50%\s+([\d.]+)(us|ms|s)$", re.MULTILINE)
UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk(url: str, connections: int, script: list[str] | None = None) -> dict[str, float]:
    """``wrk`` against ``url`` (GET, or what ``script``, ``[lua file, *its arguments]``, sends):
    req/s and p50 in ms. Any answer that is not a 2xx makes the run invalid."""
    threads = min(connections, 2)
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{SECONDS}s", "--latency", "--timeout", "5s"]
    scripted = ["-s", script[0], url, "--", *script[1:]] if script else [url]
    out = subprocess.run(
        [*command, "-H", f"Authorization: Bearer {TOKEN}", *scripted],
        capture_output=True,
        text=True,
        check=True,
        timeout=SECONDS + 30,
    ).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise SystemExit(f"wrk saw errors from {url}, so the figures would not be what they say:\n{out}")
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = WRK_LATENCY.search(out)
    if rps is None or p50 is None:
        raise SystemExit(f"cannot read wrk's output:\n{out}")
    return {"req_per_s": float(rps.group(1)), "p50_ms": float(p50.group(1)) * UNIT_MS[p50.group(2)]}


async def direct_p50(database_url: str, user_id: int) -> float:
    """The floor: p50 of one read straight through an asyncpg pool, one at a time."""
    async with asyncpg.create_pool(database_url, min_size=1, max_size=1) as pool:
        query = "SELECT id, email, name, telegram_chat_id, created_at, version FROM users WHERE id = $1"
        measured = await measure(lambda: pool.fetchrow(query, user_id), 1, max(200, int(3000 * SCALE)))
    return float(measured["p50_ms"])


def measured(name: str, database_url: str, sink_url: str, user_id: int) -> dict[str, Any]:
    """Start set-up ``name`` (one at a time: eight pools at once would pass PostgreSQL's
    connection limit), load it at concurrency 16 then 1, stop it."""
    server, settings = SETUPS[name]
    port = free_port()
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": sink_url, "SERVICE_TOKENS": f"api={TOKEN}", "LOG_LEVEL": "warning"}
    process = start_service(server, database_url, port, env | settings, SERVERS_TOO)
    try:
        url = f"http://127.0.0.1:{port}/users/{user_id}"
        eventually_blocking(partial(answers, url), f"{name} answering", timeout=60, abort=exited(process))
        measured = {"c16": wrk(url, 16), "c1": wrk(url, 1)}
        if name in WRITES:  # every key new: this run, this set-up, this concurrency
            posts = [str(POST_ORDERS), "", str(user_id), TOKEN]
            for connections in (16, 1):
                posts[1] = f"{secrets.token_hex(4)}-{connections}"
                measured[f"write c{connections}"] = wrk(f"http://127.0.0.1:{port}", connections, posts)
        return measured
    finally:
        process.terminate()
        process.wait(timeout=15)


async def run(server_url: str) -> dict[str, Any]:
    sink, sink_url = start_sink()
    try:
        async with database_with_a_user(server_url) as (database_url, user_id):
            rounds = []
            for round_number in range(ROUNDS):  # interleaved, so a noisy minute hits every set-up alike
                measurements = {name: measured(name, database_url, sink_url, user_id) for name in SETUPS}
                measurements["direct asyncpg"] = {"c1": {"p50_ms": await direct_p50(database_url, user_id)}}
                rounds.append(measurements)
                print(f"  round {round_number + 1} of {ROUNDS} measured", file=sys.stderr)
            return summarise(rounds)
    finally:
        sink.terminate()
        sink.wait(timeout=10)


def answers(url: str) -> bool:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})  # noqa: S310 - loopback
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback
            return int(response.status) == 200
    except OSError:
        return False


def median_round(rounds: list[dict[str, Any]], name: str, loaded: str, alone: str) -> dict[str, Any]:
    """``name``'s round with the median throughput ratio to the minimal service of that round."""
    ranked = sorted(
        (
            {
                "req_per_s": r[name][loaded]["req_per_s"],
                "p50_ms": r[name][alone]["p50_ms"],
                "ratio": r[name][loaded]["req_per_s"] / r["minimal"][loaded]["req_per_s"],
            }
            for r in rounds
        ),
        key=lambda m: m["ratio"],
    )
    return ranked[len(ranked) // 2] | {"ratio_rounds": [round(m["ratio"], 2) for m in ranked]}


def summarise(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    direct = sorted(r["direct asyncpg"]["c1"]["p50_ms"] for r in rounds)[len(rounds) // 2]
    results: dict[str, Any] = {"direct asyncpg": {"p50_ms": direct}}
    for name in SETUPS:
        results[name] = median_round(rounds, name, "c16", "c1")
        results[name]["above_direct_ms"] = results[name]["p50_ms"] - direct
    results["writes"] = {name: median_round(rounds, name, "write c16", "write c1") for name in WRITES}
    return results


def report(results: dict[str, Any]) -> str:
    lines = [
        "| set-up | req/s (c=16) | vs minimal | each round | CPU µs/request | p50 ms (c=1) | above direct |",
        "|---|---|---|---|---|---|---|",
        f"| direct asyncpg read (no hop) | — | — | — | — | {results['direct asyncpg']['p50_ms']:.2f} | — |",
    ]
    for name in SETUPS:
        m = results[name]
        rounds = ", ".join(f"{r:.2f}" for r in m["ratio_rounds"])
        lines.append(
            f"| {name} | {m['req_per_s']:,.0f} | {m['ratio']:.2f} | {rounds} | {1e6 / m['req_per_s']:,.0f} "
            f"| {m['p50_ms']:.2f} | +{m['above_direct_ms']:.2f} ms |"
        )
    lines += [
        "",
        "POST /orders (idempotency key, order and outbox row in one transaction):",
        "",
        "| set-up | req/s (c=16) | vs minimal | each round | p50 ms (c=1) |",
        "|---|---|---|---|---|",
    ]
    for name, m in results["writes"].items():
        rounds = ", ".join(f"{r:.2f}" for r in m["ratio_rounds"])
        lines.append(f"| {name} | {m['req_per_s']:,.0f} | {m['ratio']:.2f} | {rounds} | {m['p50_ms']:.2f} |")
    return "\n".join(lines)


def plot(results: dict[str, Any], title: str, target: Path) -> None:
    names = list(SETUPS)
    figure, axis = plt.subplots(figsize=(9, 4.5))
    bars = axis.barh(names[::-1], [results[n]["ratio"] for n in names[::-1]], color="#3f51b5")
    axis.bar_label(bars, fmt="%.2f", padding=3)
    axis.axvline(0.8, color="#c62828", linestyle="--", label="goal for the data service: 0.8")
    axis.set_xlabel("throughput at concurrency 16, relative to the minimal service of the same round")
    axis.set_xlim(0, 1.2)
    axis.legend(loc="lower right")
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target, dpi=110)


def main() -> None:
    if shutil.which("wrk") is None:
        raise SystemExit(
            "wrk is not installed (Debian: apt-get install wrk); this benchmark drives the load with it"
        )
    results = asyncio.run(run(loopback_database_url()))
    date, machine = stamp()
    print(f"{date} · {machine}\n")
    print(report(results))
    save("hop", date, machine, results)
    keep("hop", "The hop, lever by lever (GET /users/{id})", date, machine, report(results))
    plot(
        results,
        f"GET /users/{{id}}, lever by lever · {date} · {machine}",
        OUTPUT / "docs/assets/benchmarks/hop.png",
    )


if __name__ == "__main__":
    main()
