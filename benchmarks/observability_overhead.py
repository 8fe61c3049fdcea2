"""What observability costs per request: the same endpoint bare, observed, and traced.

Run: ``uv run python benchmarks/observability_overhead.py`` (needs PostgreSQL).

The minimal FastAPI + asyncpg service of ``http_clients.py`` (one single-row read) runs as
its own process (uvicorn, one worker) in five set-ups:

* bare: no observability at all;
* RED metrics only: the metrics middleware and ``/metrics``, nothing else;
* observed, no spans: ``observe_process`` + ``observe_app`` as every service has them (ECS
  logs, RED metrics, request ids, tracing on) with a sampling ratio of 0, so no span is recorded;
* observed, 10 % traced: ratio 0.1, spans exported over OTLP/HTTP to a local sink;
* observed, all traced: ratio 1.0, every request's span exported.

Each is read with an aiohttp client at concurrency 1 (latency) and 16 (throughput; the
single-worker server is then CPU-bound, so 1/throughput is its CPU time per request), in
``BENCH_ROUNDS`` interleaved rounds (3); the round with the median throughput is reported.
Below ``BENCH_SCALE=0.1`` (the test suite's check that the script works) only the two ends run:
bare and all traced.
Prints a Markdown table, writes ``benchmarks/results/observability_overhead.json`` and a
plot to ``docs/assets/benchmarks/observability_overhead.png``.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import matplotlib
from http_clients import REQUESTS, database_with_a_user, exited, measure, start_service
from publishing import OUTPUT, loopback_database_url, save, stamp

from reference_system.ports import free_port, port_is_open
from reference_system.waiting import eventually_blocking

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # the Agg backend is chosen above, before this import

MINIMAL = "minimal FastAPI + asyncpg"
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
SCALE = float(os.environ.get("BENCH_SCALE", "1"))
SETUPS: dict[str, dict[str, str]] = {
    "bare": {},
    "RED metrics only": {"OBSERVE": "metrics"},
    "observed, no spans (ratio 0)": {"OBSERVE": "1", "OTEL_TRACES_SAMPLER_ARG": "0"},
    "observed, 10 % traced": {"OBSERVE": "1", "OTEL_TRACES_SAMPLER_ARG": "0.1"},
    "observed, all traced": {"OBSERVE": "1", "OTEL_TRACES_SAMPLER_ARG": "1"},
}
if SCALE < 0.1:  # a run that only proves the script works (the test suite's) measures the two ends
    SETUPS = {name: SETUPS[name] for name in ("bare", "observed, all traced")}


def start_sink() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    sink = subprocess.Popen([sys.executable, str(Path(__file__).parent / "otlp_sink.py"), str(port)])
    url = f"http://127.0.0.1:{port}"
    eventually_blocking(lambda: port_is_open(url), "the OTLP sink listening", timeout=20, abort=exited(sink))
    return sink, url


def batches(sink_url: str) -> int:
    with urllib.request.urlopen(f"{sink_url}/count", timeout=5) as answer:  # noqa: S310 - loopback
        return int(json.load(answer)["batches"])


async def run(server_url: str) -> dict[str, Any]:
    sink, sink_url = start_sink()
    try:
        async with database_with_a_user(server_url) as (database_url, user_id):
            rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in SETUPS}
            for round_number in range(ROUNDS):  # interleaved, so a noisy minute hits every set-up alike
                for name, settings in SETUPS.items():
                    exported = settings | {"OTEL_EXPORTER_OTLP_ENDPOINT": sink_url} if settings else {}
                    before = batches(sink_url)
                    port = free_port()
                    service = start_service(MINIMAL, database_url, port, exported)
                    try:
                        measured = await compare(f"http://127.0.0.1:{port}/users/{user_id}")
                    finally:
                        service.terminate()  # SIGTERM: the batch processor flushes what it holds
                        service.wait(timeout=10)
                    measured["otlp_batches"] = batches(sink_url) - before
                    rounds[name].append(measured)
                    print(f"  round {round_number + 1}: measured {name}", file=sys.stderr)
            return {name: median_round(measured) for name, measured in rounds.items()}
    finally:
        sink.terminate()
        sink.wait(timeout=10)


def median_round(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The round with the median throughput (its latencies with it), and every round's req/s."""
    ranked = sorted(rounds, key=lambda r: r["@ 16"]["req_per_s"])
    return ranked[len(ranked) // 2] | {"req_per_s_rounds": [round(r["@ 16"]["req_per_s"]) for r in rounds]}


async def compare(url: str) -> dict[str, Any]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as session:

        async def read() -> object:
            async with session.get(url) as response:
                return await response.json()

        return {f"@ {c}": await measure(read, c, total) for c, total in REQUESTS.items()}


def report(results: dict[str, Any]) -> str:
    bare = results["bare"]
    lines = [
        "| set-up | p50 ms (c=1) | p99 ms (c=1) | req/s (c=16) | req/s, each round | server µs/request "
        "| vs bare | OTLP batches |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, measured in results.items():
        one, many = measured["@ 1"], measured["@ 16"]
        cost = 1e6 / many["req_per_s"]
        extra = cost - 1e6 / bare["@ 16"]["req_per_s"]
        lines.append(
            f"| {name} | {one['p50_ms']:.2f} | {one['p99_ms']:.2f} | {many['req_per_s']:,.0f} "
            f"| {', '.join(f'{r:,}' for r in measured['req_per_s_rounds'])} | {cost:,.0f} "
            f"| {'—' if name == 'bare' else f'{extra:+,.0f} µs'} | {measured['otlp_batches']} |"
        )
    return "\n".join(lines)


def plot(results: dict[str, Any], title: str, target: Path) -> None:
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 3.6), constrained_layout=True)
    names = list(results)
    for axis, key, metric, label in (
        (left, "@ 1", "p50_ms", "p50 latency, concurrency 1 (ms)"),
        (right, "@ 16", "req_per_s", "req/s, concurrency 16"),
    ):
        bars = axis.barh(
            names,
            [results[n][key][metric] for n in names],
            color=["#607d8b"] + ["#3f51b5"] * (len(names) - 1),
        )
        axis.bar_label(bars, fmt="%.2f" if metric == "p50_ms" else "%.0f", padding=3)
        axis.set_xlabel(label)
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
    save("observability_overhead", date, machine, results)
    plot(
        results,
        f"GET /users/{{id}} on one uvicorn worker: bare vs observed · {date} · {machine}",
        OUTPUT / "docs/assets/benchmarks/observability_overhead.png",
    )


if __name__ == "__main__":
    main()
