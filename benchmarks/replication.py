"""What a synchronous standby costs a write, and how long a failover keeps the data service from writing.

Run: ``uv run python benchmarks/replication.py`` (needs PostgreSQL's ``initdb``, ``pg_basebackup``
and ``pg_ctl``: it makes a primary and a standby of its own on free ports, as the failover test does).

For a pair with asynchronous replication and one with a synchronous standby
(``synchronous_standby_names = '*'``, ``synchronous_commit = on``): the commit of a one-row
``INSERT``, one at a time (p50, p99) and 16 at a time (commits per second), straight through
asyncpg; ``POST /users`` through ``pg_data_service`` (in-process, as the failover test runs it)
one at a time; then the failover: the primary is killed, the standby promoted, and the time from
the kill to the promotion, and from the promotion to the first write the service acknowledges
again, are measured. ``BENCH_ROUNDS`` rounds
(3), the median reported. Prints a Markdown table, writes ``benchmarks/results/replication.json``
and adds the table on top of ``benchmarks/results/replication.md`` (earlier runs stay below it).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from typing import Any

import asyncpg
from http_clients import measure
from publishing import keep, save, stamp
from pydantic import SecretStr

from patterns.testing.postgres_pair import PostgresPair, postgres_pair
from patterns.testing.servers import in_process
from pg_data_service.app import create_app
from pg_data_service.migrate import upgrade
from pg_data_service.settings import Settings

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
SCALE = float(os.environ.get("BENCH_SCALE", "1"))
COMMITS = max(int(2_000 * SCALE), 20)
TOKEN = "bench-token-0123456789abcdef"  # noqa: S105 - a throwaway token for an in-process run
MODES = {"asynchronous": False, "synchronous": True}


async def commits(pair: PostgresPair) -> dict[str, float]:
    async with asyncpg.create_pool(pair.primary.url(), min_size=16, max_size=16) as pool:
        await pool.execute("CREATE TABLE bench (id bigserial PRIMARY KEY, at timestamptz DEFAULT now())")
        one = await measure(lambda: pool.execute("INSERT INTO bench DEFAULT VALUES"), 1, COMMITS)
        many = await measure(lambda: pool.execute("INSERT INTO bench DEFAULT VALUES"), 16, COMMITS)
    return {"p50_ms": one["p50_ms"], "p99_ms": one["p99_ms"], "commits_per_s_c16": many["req_per_s"]}


async def through_the_service(pair: PostgresPair) -> dict[str, float]:
    """``POST /users`` one at a time, then the failover: kill, promote, time to the first 201."""
    await asyncio.to_thread(upgrade, pair.url())
    settings = Settings(database_url=pair.url(), service_tokens={"api": SecretStr(TOKEN)})
    numbers = iter(range(10**9))
    async with in_process(create_app(settings), headers={"Authorization": f"Bearer {TOKEN}"}) as pg:

        async def sign_up() -> int:
            n = next(numbers)
            return (await pg.post("/users", json={"email": f"u{n}@example.org", "name": "U"})).status_code

        write = await measure(sign_up, 1, max(COMMITS // 4, 10))
        killed = time.perf_counter()
        pair.crash_primary()
        pair.promote_standby()
        promoted = time.perf_counter()
        while await sign_up() != 201:
            if time.perf_counter() - promoted > 60:
                raise SystemExit("the service did not write again within 60 s of the promotion")
            await asyncio.sleep(0.01)
        return {
            "post_users_p50_ms": write["p50_ms"],
            "promotion_s": promoted - killed,
            "promoted_to_first_write_s": time.perf_counter() - promoted,
        }


async def run() -> dict[str, Any]:
    rounds: list[dict[str, dict[str, float]]] = []
    for number in range(ROUNDS):
        measured = {}
        for mode, synchronous in MODES.items():
            with postgres_pair(synchronous) as pair:
                measured[mode] = await commits(pair) | await through_the_service(pair)
        rounds.append(measured)
        print(f"  round {number + 1} of {ROUNDS} measured", file=sys.stderr)
    return {
        mode: {key: statistics.median(r[mode][key] for r in rounds) for key in rounds[0][mode]}
        for mode in MODES
    }


def report(results: dict[str, Any]) -> str:
    rows = [
        ("commit of a one-row INSERT, p50 (c=1)", "p50_ms", "{:.2f} ms"),
        ("the same, p99 (c=1)", "p99_ms", "{:.2f} ms"),
        ("commits per second (c=16)", "commits_per_s_c16", "{:,.0f}"),
        ("POST /users through pg_data_service, p50 (c=1)", "post_users_p50_ms", "{:.2f} ms"),
        ("primary killed → standby promoted (pg_ctl promote -w)", "promotion_s", "{:.2f} s"),
        ("promoted → first write the service acknowledges", "promoted_to_first_write_s", "{:.2f} s"),
    ]
    lines = ["| measure | asynchronous | synchronous standby |", "|---|---|---|"]
    for label, key, shape in rows:
        a, s = results["asynchronous"][key], results["synchronous"][key]
        lines.append(f"| {label} | {shape.format(a)} | {shape.format(s)} |")
    return "\n".join(lines)


def main() -> None:
    results = asyncio.run(run())
    date, machine = stamp()
    print(f"{date} · {machine} · median of {ROUNDS} rounds\n")
    print(report(results))
    save("replication", date, machine, results)
    keep("replication", "A synchronous standby, and a failover", date, machine, report(results))


if __name__ == "__main__":
    main()
