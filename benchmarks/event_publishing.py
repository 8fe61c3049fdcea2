"""What confirms cost: publish throughput one at a time vs pipelined, and end-to-end event latency.

Run: ``uv run python benchmarks/event_publishing.py`` (needs RabbitMQ and PostgreSQL; RABBITMQ_URL
and DATABASE_URL, or the local servers).

In a scratch vhost: publishes N events with publisher confirms, awaiting each confirm
before the next publish, then the same N pipelined (up to 100 confirms outstanding), then
the same through aiormq alone (the driver under aio-pika, the same messages); then
the outbox relay of ``pg_data_service`` drains N outbox rows of a scratch database (one
event per order, batches of 100 as the service runs it, then of 500); then measures publish→consume
latency of events sent at a steady rate to a consumer with manual acks. Prints a Markdown table,
writes ``benchmarks/results/event_publishing.json`` and a plot to
``docs/assets/benchmarks/event_publishing.png``.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from decimal import Decimal
from typing import Any

import aio_pika
import aiormq
import asyncpg
import matplotlib
from aio_pika.abc import AbstractExchange, AbstractIncomingMessage
from publishing import OUTPUT, loopback_database_url, loopback_url, save, stamp
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from patterns.testing.isolation import postgres_database, rabbitmq_vhost
from pg_data_service.migrate import upgrade
from pg_data_service.outbox import relay_once
from pg_data_service.settings import asyncpg_url
from shared.events.envelope import OrderPlaced, new_event
from shared.events.publisher import EventPublisher, to_message
from shared.events.topology import declare

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # the Agg backend is chosen above, before this import

SCALE = float(os.environ.get("BENCH_SCALE", "1"))
EVENTS = max(int(5_000 * SCALE), 10)
LATENCY_EVENTS = max(int(2_000 * SCALE), 10)
WINDOW = 100


def event(n: int) -> aio_pika.Message:
    return to_message(new_event(OrderPlaced(order_id=n, user_id=1, total=Decimal("10.00"))))


async def one_at_a_time(exchange: AbstractExchange) -> float:
    started = time.perf_counter()
    for n in range(EVENTS):
        await exchange.publish(event(n), routing_key="order.placed", mandatory=True)
    return EVENTS / (time.perf_counter() - started)


async def pipelined(exchange: AbstractExchange) -> float:
    window = asyncio.Semaphore(WINDOW)

    async def publish(n: int) -> None:
        async with window:
            await exchange.publish(event(n), routing_key="order.placed", mandatory=True)

    started = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for n in range(EVENTS):
            group.create_task(publish(n))
    return EVENTS / (time.perf_counter() - started)


async def driver_alone(url: str) -> float:
    """The same publishes (each event built as the line above builds it) through aiormq, the AMQP
    driver under aio-pika, with no aio-pika objects in between: what aio-pika's own layer costs."""
    connection = await aiormq.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        window = asyncio.Semaphore(WINDOW)

        async def publish(n: int) -> None:
            async with window:
                message = event(n)
                await channel.basic_publish(
                    message.body,
                    exchange="domain.events",
                    routing_key="order.placed",
                    properties=message.properties,
                    mandatory=True,
                )

        started = time.perf_counter()
        async with asyncio.TaskGroup() as group:
            for n in range(EVENTS):
                group.create_task(publish(n))
        return EVENTS / (time.perf_counter() - started)
    finally:
        await connection.close()


async def relayed(database_url: str, rabbitmq_url: str, batch: int = 100) -> float:
    """Events/s of the outbox relay draining ``EVENTS`` rows, one per order, ``batch`` rows a round."""
    async with postgres_database(database_url) as scratch:
        await asyncio.to_thread(upgrade, scratch)
        connection = await asyncpg.connect(scratch)
        try:
            rows = [
                new_event(OrderPlaced(order_id=n, user_id=1, total=Decimal("1.00"))) for n in range(EVENTS)
            ]
            await connection.executemany(
                "INSERT INTO outbox (event_id, event_type, envelope) VALUES ($1, $2, $3)",
                [(row.id, row.type, row.model_dump_json()) for row in rows],
            )
        finally:
            await connection.close()
        engine = create_async_engine(asyncpg_url(scratch))
        try:
            sessions = async_sessionmaker(engine, expire_on_commit=False)
            async with EventPublisher(rabbitmq_url) as publisher:
                started = time.perf_counter()
                sent = 0
                while confirmed := await relay_once(sessions, publisher, batch):
                    sent += confirmed
                elapsed = time.perf_counter() - started
        finally:
            await engine.dispose()
    assert sent == EVENTS, f"the relay sent {sent} of {EVENTS}"
    return EVENTS / elapsed


async def end_to_end(url: str) -> list[float]:
    latencies: list[float] = []
    done = asyncio.Event()
    connection = await aio_pika.connect(url)
    async with connection:
        publish_channel = await connection.channel(publisher_confirms=True)
        consume_channel = await connection.channel()
        await consume_channel.set_qos(prefetch_count=16)
        queues = await declare(consume_channel, "bench.latency", ["order.confirmed"])

        async def on_message(message: AbstractIncomingMessage) -> None:
            sent_us = int(str((message.headers or {})["x-sent-us"]))
            latencies.append((time.time_ns() // 1000 - sent_us) / 1000)
            await message.ack()
            if len(latencies) >= LATENCY_EVENTS:
                done.set()

        await queues.main.consume(on_message)
        exchange = await publish_channel.get_exchange("domain.events")
        for n in range(LATENCY_EVENTS):
            message = to_message(new_event(OrderPlaced(order_id=n, user_id=1, total=Decimal("1.00"))))
            # Integer microseconds: AMQP tables may carry floats as 32-bit, far too coarse for a clock.
            message.headers["x-sent-us"] = time.time_ns() // 1000
            await exchange.publish(message, routing_key="order.confirmed", mandatory=True)
            await asyncio.sleep(0.002)  # a steady 500 events/s, not a burst
        await asyncio.wait_for(done.wait(), timeout=60)
    return sorted(latencies)


async def run(server_url: str, database_url: str) -> dict[str, Any]:
    async with rabbitmq_vhost(server_url) as url:
        connection = await aio_pika.connect(url)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            await declare(channel, "bench.sink", ["order.placed"])
            exchange = await channel.get_exchange("domain.events")
            sequential = await one_at_a_time(exchange)
            concurrent = await pipelined(exchange)
        ceiling = await driver_alone(url)
        relay = await relayed(database_url, url)
        relay_500 = await relayed(database_url, url, batch=500)
        latencies = await end_to_end(url)
    return {
        "publish_per_s_one_at_a_time": sequential,
        "publish_per_s_pipelined": concurrent,
        "driver_per_s": ceiling,
        "relay_per_s": relay,
        "relay_500_per_s": relay_500,
        "latency_p50_ms": statistics.median(latencies),
        "latency_p99_ms": latencies[int(len(latencies) * 0.99) - 1],
        "events": EVENTS,
        "latency_events": LATENCY_EVENTS,
    }


def main() -> None:
    results = asyncio.run(
        run(
            loopback_url("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/", "RabbitMQ"),
            loopback_database_url(),
        )
    )
    date, machine = stamp()
    print(f"{date} · {machine}\n")
    print("| measure | value |\n|---|---|")
    print(
        f"| publish with confirms, one at a time | {results['publish_per_s_one_at_a_time']:,.0f} events/s |"
    )
    print(
        f"| publish with confirms, {WINDOW} in flight | {results['publish_per_s_pipelined']:,.0f} events/s |"
    )
    print(f"| aiormq alone (no aio-pika), {WINDOW} in flight | {results['driver_per_s']:,.0f} events/s |")
    print(
        f"| outbox relay, rows to confirmed events (100 a batch) | {results['relay_per_s']:,.0f} events/s |"
    )
    print(f"| outbox relay, 500 a batch | {results['relay_500_per_s']:,.0f} events/s |")
    print(f"| publish → consume latency p50 | {results['latency_p50_ms']:.2f} ms |")
    print(f"| publish → consume latency p99 | {results['latency_p99_ms']:.2f} ms |")
    save("event_publishing", date, machine, results)
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 3.2), constrained_layout=True)
    bars = left.barh(
        ["one at a time", f"{WINDOW} in flight", "aiormq alone", "outbox relay", "relay, 500 a batch"],
        [
            results["publish_per_s_one_at_a_time"],
            results["publish_per_s_pipelined"],
            results["driver_per_s"],
            results["relay_per_s"],
            results["relay_500_per_s"],
        ],
        color="#3f51b5",
    )
    left.bar_label(bars, fmt="%.0f", padding=3)
    left.set_xlabel("events/s with publisher confirms")
    left.invert_yaxis()
    bars = right.barh(["p50", "p99"], [results["latency_p50_ms"], results["latency_p99_ms"]], color="#607d8b")
    right.bar_label(bars, fmt="%.2f ms", padding=3)
    right.set_xlabel("publish → consume latency (ms)")
    right.invert_yaxis()
    figure.suptitle(f"RabbitMQ {date} · {machine}", fontsize=10)
    target = OUTPUT / "docs/assets/benchmarks/event_publishing.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target, dpi=110)


if __name__ == "__main__":
    main()
