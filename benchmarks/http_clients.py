"""The price of the hop: one single-row read, direct vs through pg_data_service with each HTTP client.

Run: ``uv run python benchmarks/http_clients.py`` (needs PostgreSQL; DATABASE_URL or the local server).

It creates a scratch database, starts pg_data_service as its own process (uvicorn, one
worker) on a loopback port, then in this process reads the same user row

* directly with an asyncpg pool (the floor: no hop),
* through the service with aiohttp, httpx (default transport), httpx over the
  httpx-aiohttp transport, and pyreqwest,
* with aiohttp's two levers: no keep-alive (a new connection per request) and a pool of 4
  connections, under the concurrency of 16 (the typed clients keep 100, alive for 30 s),

at concurrency 1 and 16, all in one run so the numbers are comparable. It prints a
Markdown table, writes ``benchmarks/results/http_clients.json`` and a plot to
``docs/assets/benchmarks/http_clients.png``.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import httpx
import httpx_aiohttp
import matplotlib
from publishing import OUTPUT, loopback_database_url, save, stamp
from pyreqwest.client import ClientBuilder

from patterns.testing.isolation import postgres_database
from reference_system.ports import free_port, port_is_open
from reference_system.waiting import eventually_blocking

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # the Agg backend is chosen above, before this import

TOKEN = "bench-token-0123456789abcdef"  # noqa: S105 - a throwaway token for a loopback run
# BENCH_SCALE shrinks the run (the test suite uses it to check this script works, not to measure).
SCALE = float(os.environ.get("BENCH_SCALE", "1"))
REQUESTS = {1: int(2_000 * SCALE) or 1, 16: int(8_000 * SCALE) or 16}
WARMUP = int(300 * SCALE)

type Call = Callable[[], Awaitable[object]]


async def measure(call: Call, concurrency: int, total: int) -> dict[str, float]:
    """Run ``total`` calls, ``concurrency`` at a time; latency percentiles in ms and throughput."""
    for _ in range(WARMUP):
        await call()
    latencies: list[float] = []
    remaining = total

    async def lane() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            start = time.perf_counter()
            await call()
            latencies.append((time.perf_counter() - start) * 1000)

    started = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for _ in range(concurrency):
            group.create_task(lane())
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "p50_ms": statistics.median(latencies),
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1],
        "req_per_s": len(latencies) / elapsed,
    }


SERVERS = {
    # the real data service: bearer auth, pydantic, SQLAlchemy session, problem details
    "pg_data_service": ["-m", "pg_data_service"],
    # the trial's minimal endpoint: FastAPI + asyncpg and nothing else
    "minimal FastAPI + asyncpg": [
        "-m",
        "uvicorn",
        "--app-dir",
        str(Path(__file__).parent),
        "minimal_service:app",
        "--loop",  # the event loop and HTTP parser every service runs (shared.lifecycle, shared.serve)
        "uvloop",
        "--http",
        "httptools",
        "--log-level",
        "warning",
        "--no-access-log",
    ],
}


def start_service(
    kind: str,
    database_url: str,
    port: int,
    settings: dict[str, str] | None = None,
    servers: Mapping[str, list[str]] = SERVERS,
) -> subprocess.Popen[bytes]:
    env = os.environ | {
        "DATABASE_URL": database_url,
        "SERVICE_TOKENS": f"api={TOKEN}",
        "PORT": str(port),
        "LOG_LEVEL": "warning",
        **(settings or {}),
    }
    arguments = servers[kind] + (["--port", str(port)] if kind != "pg_data_service" else [])
    service = subprocess.Popen([sys.executable, *arguments], env=env)
    url = f"http://127.0.0.1:{port}"
    eventually_blocking(lambda: port_is_open(url), f"{kind} listening", timeout=30, abort=exited(service))
    return service


def exited(process: subprocess.Popen[bytes]) -> Callable[[], str | None]:
    """An ``abort`` for waiting on ``process``: the reason once it has exited."""
    return lambda: None if process.poll() is None else f"exited with {process.returncode}"


@asynccontextmanager
async def database_with_a_user(server_url: str) -> AsyncIterator[tuple[str, int]]:
    """A scratch database on ``server_url``, migrated, holding one user; yields its URL and the user's id."""
    from pg_data_service.migrate import upgrade

    async with postgres_database(server_url) as database_url:
        await asyncio.to_thread(upgrade, database_url)
        connection = await asyncpg.connect(database_url)
        user_id = await connection.fetchval(
            "INSERT INTO users (email, name, version) VALUES ('bench@example.org', 'Bench', 1) RETURNING id"
        )
        await connection.close()
        yield database_url, int(user_id)


async def run(server_url: str) -> dict[str, Any]:
    async with database_with_a_user(server_url) as (database_url, user_id):
        results: dict[str, Any] = {}
        for kind in SERVERS:
            port = free_port()
            service = start_service(kind, database_url, port)
            try:
                results[kind] = await compare(database_url, f"http://127.0.0.1:{port}", int(user_id))
            finally:
                service.terminate()
                service.wait(timeout=10)
        return results


async def compare(database_url: str, base_url: str, user_id: int) -> dict[str, Any]:
    path = f"/users/{user_id}"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    results: dict[str, Any] = {}
    pool = await asyncpg.create_pool(database_url, min_size=16, max_size=16)
    aio = aiohttp.ClientSession(base_url, headers=headers, connector=aiohttp.TCPConnector(limit=100))
    # The client's levers: a fresh connection per request, and a pool smaller than the concurrency
    closing = aiohttp.ClientSession(
        base_url, headers=headers, connector=aiohttp.TCPConnector(force_close=True)
    )
    small = aiohttp.ClientSession(base_url, headers=headers, connector=aiohttp.TCPConnector(limit=4))
    plain = httpx.AsyncClient(base_url=base_url, headers=headers, limits=httpx.Limits(max_connections=100))
    bridged = httpx.AsyncClient(
        base_url=base_url, headers=headers, transport=httpx_aiohttp.AiohttpTransport()
    )
    reqwest = ClientBuilder().base_url(base_url).default_headers(headers).max_connections(100).build()

    async def direct() -> object:
        async with pool.acquire() as connection:
            return await connection.fetchrow("SELECT * FROM users WHERE id = $1", user_id)

    async def with_aiohttp(session: aiohttp.ClientSession = aio) -> object:
        async with session.get(path) as response:
            return await response.json()

    async def with_httpx() -> object:
        return (await plain.get(path)).json()

    async def with_httpx_aiohttp() -> object:
        return (await bridged.get(path)).json()

    async def with_pyreqwest() -> object:
        return await (await reqwest.get(path).build().send()).json()

    contenders: dict[str, Call] = {
        "asyncpg (direct, no hop)": direct,
        "aiohttp": with_aiohttp,
        "aiohttp, no keep-alive": partial(with_aiohttp, closing),
        "aiohttp, a pool of 4 connections": partial(with_aiohttp, small),
        "httpx + httpx-aiohttp": with_httpx_aiohttp,
        "pyreqwest": with_pyreqwest,
        "httpx (default transport)": with_httpx,
    }
    try:
        for name, call in contenders.items():
            for concurrency, total in REQUESTS.items():
                results[f"{name} @ {concurrency}"] = await measure(call, concurrency, total)
                print(f"  measured {name} at concurrency {concurrency}", file=sys.stderr)
    finally:
        await pool.close()
        for session in (aio, closing, small):
            await session.close()
        await plain.aclose()
        await bridged.aclose()
        await reqwest.close()
    return results


def report(results: dict[str, Any]) -> str:
    lines = ["| server | client | concurrency | p50 ms | p99 ms | req/s |", "|---|---|---|---|---|---|"]
    for server, measured in results.items():
        for key, value in measured.items():
            name, concurrency = key.rsplit(" @ ", 1)
            server_name = "—" if name.startswith("asyncpg") else server
            lines.append(
                f"| {server_name} | {name} | {concurrency} | {value['p50_ms']:.2f} | {value['p99_ms']:.2f} "
                f"| {value['req_per_s']:,.0f} |"
            )
    return "\n".join(lines)


def plot(results: dict[str, Any], title: str, target: Path) -> None:
    figure, axes = plt.subplots(len(results), 2, figsize=(12, 3.2 * len(results)), constrained_layout=True)
    for row, (server, measured) in zip(axes, results.items(), strict=True):
        names = list(dict.fromkeys(key.rsplit(" @ ", 1)[0] for key in measured))
        for axis, (concurrency, metric, label) in zip(
            row,
            ((1, "p50_ms", "p50 latency, concurrency 1 (ms)"), (16, "req_per_s", "req/s, concurrency 16")),
            strict=True,
        ):
            values = [measured[f"{name} @ {concurrency}"][metric] for name in names]
            bars = axis.barh(names, values, color=["#607d8b"] + ["#3f51b5"] * (len(names) - 1))
            axis.bar_label(bars, fmt="%.2f" if metric == "p50_ms" else "%.0f", padding=3)
            axis.set_xlabel(label)
            axis.set_title(f"through {server}", fontsize=9)
            axis.invert_yaxis()
    figure.suptitle(title, fontsize=10)
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target, dpi=110)


def main() -> None:
    server_url = loopback_database_url()
    results = asyncio.run(run(server_url))
    date, machine = stamp()
    print(f"{date} · {machine}\n")
    print(report(results))
    save("http_clients", date, machine, results)
    plot(
        results,
        f"GET /users/{{id}}: direct vs through a service · {date} · {machine}",
        OUTPUT / "docs/assets/benchmarks/http_clients.png",
    )


if __name__ == "__main__":
    main()
