"""The API's user read with its cache: a hit, a miss, and Redis down.

Run: ``uv run python benchmarks/user_cache.py`` (needs PostgreSQL and Redis on loopback).

``pg_data_service`` and ``api_service`` run as their own processes (one uvicorn worker each),
in a scratch database and under a scratch Redis prefix. A signed-in user reads their own
``GET /users/{id}`` through the API, with an aiohttp client:

* **hit**: the user is in Redis, so the API answers without calling the data service;
* **miss**: the key is deleted before every request (not timed), so each read goes through
  the data service and stores what came back;
* **Redis down**: a second API whose Redis is a closed port: every read tries Redis, fails
  at once, and goes through (what an outage of the cache costs, and the nearest thing to no
  cache at all);
* and the data service's own ``GET /users/{id}``, the hop underneath, for reference.

p50 at concurrency 1 for all four; requests per second at concurrency 16 for all but the miss
(deleting keys in between would race the lanes). ``BENCH_ROUNDS`` interleaved rounds (3), the
median reported. Prints a Markdown table, writes ``benchmarks/results/user_cache.json`` and adds
the table on top of ``benchmarks/results/user_cache.md`` (earlier runs stay below it).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from http_clients import REQUESTS, TOKEN, exited, measure
from publishing import keep, loopback_database_url, loopback_url, save, stamp
from pydantic import SecretStr
from redis.asyncio import Redis

from api_service.auth import issue
from api_service.settings import EndUserTokens
from patterns.testing.isolation import postgres_database
from pg_data_service.migrate import upgrade
from reference_system.ports import free_port, port_is_open
from reference_system.waiting import eventually_blocking

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
PREFIX = f"bench-{secrets.token_hex(4)}:"
JWT_KEY = secrets.token_urlsafe(32)


def start(module: str, env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """``module`` on a free port, its log in ``log`` (with Redis down the API warns twice per read)."""
    port = free_port()
    settings = {"PORT": str(port), "LOG_LEVEL": "warning"} | env
    with log.open("ab") as output:
        process = subprocess.Popen([sys.executable, "-m", module], env=os.environ | settings, stdout=output)
    url = f"http://127.0.0.1:{port}"
    eventually_blocking(
        lambda: port_is_open(url), f"{module} listening (log: {log})", timeout=60, abort=exited(process)
    )
    return process, url


async def run(database_url: str, redis_url: str) -> dict[str, Any]:
    async with postgres_database(database_url) as scratch:
        await asyncio.to_thread(upgrade, scratch)
        logs = Path(tempfile.mkdtemp(prefix="user-cache-"))
        print(f"  service logs in {logs}", file=sys.stderr)
        pg_env = {"DATABASE_URL": scratch, "SERVICE_TOKENS": f"api={TOKEN}"}
        pg, pg_url = start("pg_data_service", pg_env, logs / "pg.log")
        api_env = {"PG_DATA_URL": pg_url, "SERVICE_TOKEN": TOKEN, "JWT_KEY": JWT_KEY, "CACHE_PREFIX": PREFIX}
        api, api_url = start("api_service", api_env | {"REDIS_URL": redis_url}, logs / "api.log")
        closed = f"redis://127.0.0.1:{free_port()}/0"
        down, down_url = start("api_service", api_env | {"REDIS_URL": closed}, logs / "api-redis-down.log")
        redis = Redis.from_url(redis_url)
        try:
            async with aiohttp.ClientSession() as session:
                user = {"email": "c@example.org", "name": "C"}
                user_id = int((await (await session.post(f"{api_url}/users", json=user)).json())["id"])
                as_user = {
                    "Authorization": f"Bearer {issue(EndUserTokens(jwt_key=SecretStr(JWT_KEY)), user_id)}"
                }
                hit = reader(session, f"{api_url}/users/{user_id}", as_user)
                through = reader(session, f"{down_url}/users/{user_id}", as_user)
                direct = reader(session, f"{pg_url}/users/{user_id}", {"Authorization": f"Bearer {TOKEN}"})
                rounds = []
                for number in range(ROUNDS):  # interleaved, so a noisy minute hits every read alike
                    measured = {"hit": await both(hit), "miss": {1: await misses(hit, redis, REQUESTS[1])}}
                    measured |= {
                        "Redis down": await both(through),
                        "data service underneath": await both(direct),
                    }
                    rounds.append(measured)
                    print(f"  round {number + 1} of {ROUNDS} measured", file=sys.stderr)
        finally:
            if keys := [key async for key in redis.scan_iter(f"{PREFIX}*")]:
                await redis.delete(*keys)
            await redis.aclose()
            for process in (down, api, pg):
                process.terminate()
                process.wait(timeout=15)
    return {name: median(rounds, name) for name in rounds[0]}


def median(rounds: list[dict[str, Any]], name: str) -> dict[str, float | None]:
    p50s = sorted(r[name][1]["p50_ms"] for r in rounds)
    throughputs = sorted(r[name][16]["req_per_s"] for r in rounds if 16 in r[name])
    return {
        "p50_ms": p50s[len(p50s) // 2],
        "req_per_s": throughputs[len(throughputs) // 2] if throughputs else None,
    }


def reader(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str]
) -> Callable[[], Awaitable[object]]:
    async def read() -> object:
        async with session.get(url, headers=headers) as response:
            if response.status != 200:
                raise SystemExit(f"{url} answered {response.status}: {await response.text()}")
            return await response.json()

    return read


async def both(read: Callable[[], Awaitable[object]]) -> dict[int, dict[str, float]]:
    return {c: await measure(read, c, REQUESTS[c]) for c in (1, 16)}


async def misses(read: Callable[[], Awaitable[object]], redis: Redis, total: int) -> dict[str, float]:
    """p50 of ``total`` reads, one at a time, each after the user's key was deleted (not timed)."""
    latencies = []
    for _ in range(total):
        if keys := [key async for key in redis.scan_iter(f"{PREFIX}*")]:
            await redis.delete(*keys)
        started = time.perf_counter()
        await read()
        latencies.append((time.perf_counter() - started) * 1000)
        if not await redis.exists(*[key async for key in redis.scan_iter(f"{PREFIX}*")] or ["none"]):
            raise SystemExit("a miss did not store the user: the cache is not working")
    return {"p50_ms": statistics.median(latencies)}


def report(results: dict[str, Any]) -> str:
    lines = ["| read | p50 ms (c=1) | req/s (c=16) |", "|---|---|---|"]
    for name, measured in results.items():
        rps = f"{measured['req_per_s']:,.0f}" if measured["req_per_s"] else "—"
        lines.append(f"| {name} | {measured['p50_ms']:.2f} | {rps} |")
    return "\n".join(lines)


def main() -> None:
    database_url = loopback_database_url()
    redis_url = loopback_url("REDIS_URL", "redis://127.0.0.1:6379/0", "Redis")
    results = asyncio.run(run(database_url, redis_url))
    date, machine = stamp()
    print(f"{date} · {machine}\n")
    print(report(results))
    save("user_cache", date, machine, results)
    keep("user_cache", "The API's user read: cache hit, miss, Redis down", date, machine, report(results))


if __name__ == "__main__":
    main()
