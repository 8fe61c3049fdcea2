"""What one isolated namespace per test costs: create and remove, median and p95 of 30 rounds.

Run: ``uv run python benchmarks/isolation_cost.py`` (needs the local services or env URLs).
"""

from __future__ import annotations

import asyncio
import os
import platform
import statistics
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, ExitStack
from datetime import UTC, datetime

from patterns.testing.isolation import mongo_database, postgres_database, rabbitmq_vhost, redis_namespace
from patterns.testing.service_resolution import MONGODB, POSTGRES, RABBITMQ, REDIS, resolve

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "30"))


async def measure(helper: Callable[[str], AbstractAsyncContextManager[str]], url: str) -> list[float]:
    timings = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        async with helper(url):
            pass
        timings.append((time.perf_counter() - start) * 1000)
    return timings


async def main() -> None:
    with ExitStack() as stack:
        cases = [
            ("PostgreSQL database", postgres_database, resolve(POSTGRES, stack)),
            ("Redis key prefix", redis_namespace, resolve(REDIS, stack)),
            ("RabbitMQ vhost", rabbitmq_vhost, resolve(RABBITMQ, stack)),
            ("MongoDB database", mongo_database, resolve(MONGODB, stack)),
        ]
        machine = f"{platform.node()}, {platform.machine()}, {os.cpu_count()} cores"
        print(f"{datetime.now(UTC):%Y-%m-%d}, {machine}")
        print("| namespace | engine | median ms | p95 ms |")
        print("|---|---|---|---|")
        for name, helper, found in cases:
            timings = sorted(await measure(helper, found.url))
            p95 = timings[int(len(timings) * 0.95) - 1]
            print(f"| {name} | {found.source} | {statistics.median(timings):.1f} | {p95:.1f} |")


if __name__ == "__main__":
    asyncio.run(main())
