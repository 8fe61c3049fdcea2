"""What a rate limit adds to a request: the API's ``RateLimits.spend`` against a Redis round trip.

Run: ``uv run python benchmarks/rate_limit.py`` (needs Redis on loopback; REDIS_URL or the local one).

Under a scratch key prefix: a bare ``PING`` through redis-py (the floor: one round trip), then
``spend`` for a caller who is under the limit (one Lua script: count and check), then for a caller
who is over it (the script, then the window's statistics for ``Retry-After``: two round trips),
one at a time (p50, p99) and 16 at a time (calls per second). ``BENCH_ROUNDS`` rounds (3), the
median reported. Prints a Markdown table, writes ``benchmarks/results/rate_limit.json`` and adds
the table on top of ``benchmarks/results/rate_limit.md`` (earlier runs stay below it).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import statistics
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from http_clients import measure
from publishing import keep, loopback_url, save, stamp
from redis.asyncio import Redis

from api_service.rate_limit import RateLimits
from shared.problems import ProblemError

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
SCALE = float(os.environ.get("BENCH_SCALE", "1"))
CALLS = max(int(4_000 * SCALE), 20)


async def refused(limits: RateLimits, caller: str) -> None:
    with contextlib.suppress(ProblemError):  # the 429 is the expected outcome here
        await limits.spend("1/hour", "bench", caller)


async def one_round(url: str, prefix: str) -> dict[str, dict[str, float]]:
    redis = Redis.from_url(url)
    limits = RateLimits(url, prefix)
    calls = iter(range(10**9))
    await refused(limits, "over")  # spends the one request of the hour: every later call is refused
    contenders: dict[str, Callable[[], Awaitable[object]]] = {
        "Redis PING (one round trip)": redis.ping,
        "spend, under the limit": lambda: limits.spend("1000000/hour", "bench", f"caller-{next(calls) % 64}"),
        "spend, over the limit (429)": lambda: refused(limits, "over"),
    }
    try:
        results = {}
        for name, call in contenders.items():
            alone, loaded = await measure(call, 1, CALLS), await measure(call, 16, CALLS)
            results[name] = {
                "p50_ms": alone["p50_ms"],
                "p99_ms": alone["p99_ms"],
                "per_s_c16": loaded["req_per_s"],
            }
        return results
    finally:
        async for key in redis.scan_iter(f"{prefix}*"):
            await redis.delete(key)
        await redis.aclose()


async def run(url: str) -> dict[str, Any]:
    rounds = []
    for number in range(ROUNDS):
        rounds.append(await one_round(url, f"bench-{secrets.token_hex(4)}:"))
        print(f"  round {number + 1} of {ROUNDS} measured", file=sys.stderr)
    return {
        name: {key: statistics.median(r[name][key] for r in rounds) for key in rounds[0][name]}
        for name in rounds[0]
    }


def report(results: dict[str, Any]) -> str:
    lines = ["| call | p50 ms (c=1) | p99 ms (c=1) | calls/s (c=16) |", "|---|---|---|---|"]
    for name, m in results.items():
        lines.append(f"| {name} | {m['p50_ms']:.3f} | {m['p99_ms']:.3f} | {m['per_s_c16']:,.0f} |")
    return "\n".join(lines)


def main() -> None:
    results = asyncio.run(run(loopback_url("REDIS_URL", "redis://127.0.0.1:6379/0", "Redis")))
    date, machine = stamp()
    print(f"{date} · {machine} · median of {ROUNDS} rounds\n")
    print(report(results))
    save("rate_limit", date, machine, results)
    keep("rate_limit", "What a rate limit adds to a request", date, machine, report(results))


if __name__ == "__main__":
    main()
