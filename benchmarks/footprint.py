"""What the whole local system costs to run: time until all five services are ready, and memory.

Run: ``uv run python benchmarks/footprint.py`` (needs PostgreSQL, Redis and RabbitMQ; without a MongoDB
on 127.0.0.1:27017 the command starts its nx-27017 stand-in, whose memory is then counted too).

Starts ``python -m reference_system`` as a reader does (on free ports, in a scratch database, Redis
prefix and vhost), times it from the spawn until it prints the
API's address (every service answered ``/health/ready``), then sums the resident memory (RSS) of
every process it started, read from ``/proc``, and stops it with Ctrl-C. ``BENCH_ROUNDS`` rounds
(default 3), the median published. Prints a Markdown table and writes ``benchmarks/results/footprint.json``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import sys
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from publishing import loopback_database_url, loopback_url, save, stamp

from patterns.testing.isolation import postgres_database, rabbitmq_vhost, redis_namespace
from reference_system.ports import free_port
from reference_system.processes import PORT_VARIABLES

ROOT = Path(__file__).resolve().parents[1]
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
PAGE = 4096


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it, from ``/proc/<pid>/stat``."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # ended while we looked
            parents[int(entry.name)] = int(fields[1])
    tree, frontier = [pid], [pid]
    while frontier:
        frontier = [child for child, parent in parents.items() if parent in frontier]
        tree += frontier
    return tree


def name_of(pid: int) -> str:
    """``pg_data_service`` for ``python -m pg_data_service``; the program's name otherwise."""
    try:
        words = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    except OSError:
        return "?"
    if "-m" in words:
        return words[words.index("-m") + 1]
    script = words[1] if Path(words[0]).name.startswith("python") and len(words) > 1 else words[0]
    return Path(script).name  # nx-27017, run by its console script


def rss_bytes(pid: int) -> int:
    try:
        return int((Path(f"/proc/{pid}/statm")).read_text().split()[1]) * PAGE
    except OSError:
        return 0


async def one_start(env: dict[str, str], api_port: int) -> tuple[float, dict[str, float]]:
    """Seconds until ready, and the RSS in MiB of each process."""
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "reference_system",
        cwd=ROOT,
        env=os.environ | env,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        async with asyncio.timeout(180):
            while line := (await process.stdout.readline()).decode():
                if line.startswith(f"API: http://127.0.0.1:{api_port}/"):
                    break
            else:
                raise SystemExit(
                    f"footprint: the system exited with {await process.wait()} before it was ready"
                )
        ready = time.perf_counter() - started
        return ready, {f"{name_of(pid)} ({pid})": rss_bytes(pid) / 2**20 for pid in descendants(process.pid)}
    finally:
        process.send_signal(signal.SIGINT)
        async with asyncio.timeout(60):
            while await process.stdout.read(65536):  # drain, so the services never block on a full pipe
                pass
            await process.wait()


async def run() -> dict[str, Any]:
    database_url = loopback_database_url()
    redis_url = loopback_url("REDIS_URL", "redis://127.0.0.1:6379/0", "Redis")
    rabbitmq_url = loopback_url("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/", "RabbitMQ")
    rounds = []
    for _ in range(ROUNDS):
        ports = {name: free_port() for name in PORT_VARIABLES.values()}
        async with AsyncExitStack() as scratch:
            env = {
                "DATABASE_URL": await scratch.enter_async_context(postgres_database(database_url)),
                "REDIS_URL": redis_url,
                "CACHE_PREFIX": await scratch.enter_async_context(redis_namespace(redis_url)),
                "RABBITMQ_URL": await scratch.enter_async_context(rabbitmq_vhost(rabbitmq_url)),
                "MONGODB_DATABASE": "footprint",
            } | {name: str(port) for name, port in ports.items()}
            rounds.append(await one_start(env, ports["API_PORT"]))
    return {
        "ready_seconds": statistics.median(ready for ready, _ in rounds),
        "rss_mib": statistics.median(sum(each.values()) for _, each in rounds),
        "processes": len(rounds[0][1]),
        "rounds": [{"ready_seconds": ready, "rss_mib": each} for ready, each in rounds],
    }


def main() -> None:
    results = asyncio.run(run())
    date, machine = stamp()
    print(f"{date} · {machine} · median of {ROUNDS}\n")
    print("| measure | value | goal |\n|---|---|---|")
    print(f"| `python -m reference_system` ready (all five) | {results['ready_seconds']:.1f} s | ≤ 15 s |")
    print(f"| resident memory, every process it starts | {results['rss_mib']:,.0f} MiB | ≤ 1,024 MiB |")
    print(f"| processes | {results['processes']} | |")
    print("\n| process (first round) | RSS MiB |\n|---|---|")
    for name, mib in sorted(results["rounds"][0]["rss_mib"].items(), key=lambda item: -item[1]):
        print(f"| {name.split(' (')[0]} | {mib:.0f} |")
    save("footprint", date, machine, results)


if __name__ == "__main__":
    main()
