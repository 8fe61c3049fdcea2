"""The worker's job over the real data services, its loop, and its shutdown as a real process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal

import aio_pika
import httpx
from prometheus_client import REGISTRY
from pydantic import SecretStr
from redis.asyncio import Redis

from patterns.testing.pytest_fixtures import RedisTarget
from reference_system.ports import free_port, port_is_open
from shared.clients.mongo import MongoDataClient
from shared.clients.pg import PgDataClient
from shared.events.consumer import EventConsumer
from shared.events.envelope import OrderConfirmed, OrderPlaced, decode, new_event
from shared.events.publisher import EventPublisher
from tests.examples.services.conftest import TOKENS
from tests.examples.services.test_pg_data_service import ALICE, ITEMS
from worker_service.consumers import on_order_placed
from worker_service.jobs import confirm_placed_orders
from worker_service.main import run
from worker_service.runner import run_periodically
from worker_service.settings import Settings


async def place_orders(pg: httpx.AsyncClient, count: int) -> tuple[int, list[int]]:
    user = (await pg.post("/users", json=ALICE)).json()
    ids = [
        (await pg.post("/orders", json={"user_id": user["id"], "items": ITEMS})).json()["id"]
        for _ in range(count)
    ]
    return user["id"], ids


async def test_placed_orders_are_confirmed_with_one_activity_each(
    pg: httpx.AsyncClient, mongo: httpx.AsyncClient, pg_url: str, mongo_url: str
) -> None:
    user_id, ids = await place_orders(pg, 3)
    token = SecretStr(TOKENS["worker"])
    async with PgDataClient(pg_url, token) as pg_client, MongoDataClient(mongo_url, token) as mongo_client:
        assert await confirm_placed_orders(pg_client, mongo_client) == 3
        assert await confirm_placed_orders(pg_client, mongo_client) == 0
    statuses = [(await pg.get(f"/orders/{i}")).json()["status"] for i in ids]
    assert statuses == ["confirmed"] * 3
    activity = (await mongo.get("/activity", params={"user_id": user_id})).json()["items"]
    assert sorted(a["payload"]["order_id"] for a in activity) == sorted(ids)


async def test_a_crash_between_the_two_writes_is_repaired_by_the_next_run(
    pg: httpx.AsyncClient, mongo: httpx.AsyncClient, pg_url: str, mongo_url: str
) -> None:
    user_id, [order_id] = await place_orders(pg, 1)
    token = SecretStr(TOKENS["worker"])
    async with MongoDataClient(mongo_url, token) as mongo_client:
        # The first run got as far as the activity record, then the process died.
        await mongo_client.append_activity(
            user_id,
            "order.confirmed",
            {"order_id": order_id, "total": "26.25"},
            f"order-confirmed-{order_id}",
        )
        async with PgDataClient(pg_url, token) as pg_client:
            assert await confirm_placed_orders(pg_client, mongo_client) == 1
    activity = (await mongo.get("/activity", params={"user_id": user_id})).json()["items"]
    assert len(activity) == 1
    assert (await pg.get(f"/orders/{order_id}")).json()["status"] == "confirmed"


async def test_an_order_cancelled_meanwhile_is_skipped(
    pg: httpx.AsyncClient, pg_url: str, mongo_url: str
) -> None:
    _, [order_id] = await place_orders(pg, 1)
    token = SecretStr(TOKENS["worker"])
    async with PgDataClient(pg_url, token) as pg_client, MongoDataClient(mongo_url, token) as mongo_client:
        page = await pg_client.list_orders()
        await pg.patch(f"/orders/{order_id}", json={"status": "cancelled"}, headers={"If-Match": '"1"'})

        async def stale_list(**_: object) -> object:
            return page  # what the worker read just before the cancel

        pg_client.list_orders = stale_list  # type: ignore[assignment,method-assign]
        assert await confirm_placed_orders(pg_client, mongo_client) == 0
    assert (await pg.get(f"/orders/{order_id}")).json()["status"] == "cancelled"
    skipped = REGISTRY.get_sample_value("worker_orders_skipped_total")
    assert skipped is not None
    assert skipped >= 1


async def test_stop_waits_for_the_run_in_progress() -> None:
    stop = asyncio.Event()
    started, release = asyncio.Event(), asyncio.Event()
    finished: list[str] = []

    async def slow_job() -> None:
        started.set()
        await release.wait()
        finished.append("done")

    loop = asyncio.create_task(run_periodically("slow", slow_job, interval=60, stop=stop))
    await started.wait()
    stop.set()
    await asyncio.sleep(0.05)
    assert not loop.done(), "stop must not interrupt a job"
    release.set()
    await asyncio.wait_for(loop, timeout=2)
    assert finished == ["done"]


async def test_a_failing_run_is_counted_and_the_loop_goes_on() -> None:
    stop = asyncio.Event()
    calls = 0

    async def flaky() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("data service hiccup")
        stop.set()

    await asyncio.wait_for(run_periodically("flaky", flaky, interval=0.01, stop=stop), timeout=2)
    assert calls == 2
    assert REGISTRY.get_sample_value("worker_job_runs_total", {"job": "flaky", "outcome": "error"}) == 1


def test_the_worker_process_exits_cleanly_on_sigterm(pg_url: str, mongo_url: str) -> None:
    port = free_port()
    env = os.environ | {
        "PORT": str(port),
        "PG_DATA_URL": pg_url,
        "MONGO_DATA_URL": mongo_url,
        "SERVICE_TOKEN": TOKENS["worker"],
        "JOB_INTERVAL_SECONDS": "0.2",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "worker_service"], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 20
        while not port_is_open(f"http://127.0.0.1:{port}"):
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            assert time.monotonic() < deadline
            time.sleep(0.1)
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        assert "worker_job_runs_total" in metrics
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        logged = [json.loads(line) for line in (process.stdout.read() if process.stdout else "").splitlines()]
        last = logged[-1]  # ECS JSON, one object per line, on stdout
        assert (last["message"], last["service"]["name"]) == ("worker stopped", "worker_service")
    finally:
        process.kill()
        process.wait()


def test_a_missing_setting_stops_start_up_with_one_line_naming_it() -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"SERVICE_TOKEN", "PORT"}}
    result = subprocess.run(
        [sys.executable, "-m", "worker_service"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == "worker_service: setting SERVICE_TOKEN: Field required"


async def test_the_worker_confirms_orders_until_stopped(
    pg: httpx.AsyncClient, pg_url: str, mongo_url: str
) -> None:
    _, [order_id] = await place_orders(pg, 1)
    settings = Settings(
        port=free_port(),
        pg_data_url=pg_url,
        mongo_data_url=mongo_url,
        service_token=SecretStr(TOKENS["worker"]),
        job_interval_seconds=0.05,
    )
    stop = asyncio.Event()
    worker = asyncio.create_task(run(settings, stop))
    try:
        for _ in range(100):
            if (await pg.get(f"/orders/{order_id}")).json()["status"] == "confirmed":
                break
            await asyncio.sleep(0.05)
        assert (await pg.get(f"/orders/{order_id}")).json()["status"] == "confirmed"
    finally:
        stop.set()
        await asyncio.wait_for(worker, timeout=5)


async def test_order_placed_events_confirm_the_order_and_announce_it(
    pg: httpx.AsyncClient,
    mongo: httpx.AsyncClient,
    pg_url: str,
    mongo_url: str,
    rabbitmq_url: str,
    redis_target: RedisTarget,
) -> None:
    user_id, [order_id, cancelled_id] = await place_orders(pg, 2)
    await pg.patch(f"/orders/{cancelled_id}", json={"status": "cancelled"}, headers={"If-Match": '"1"'})
    token = SecretStr(TOKENS["worker"])
    redis = Redis.from_url(redis_target.url)
    try:
        async with (
            PgDataClient(pg_url, token) as pg_client,
            MongoDataClient(mongo_url, token) as mongo_client,
            EventPublisher(rabbitmq_url) as publisher,
        ):
            handler = on_order_placed(pg_client, mongo_client, publisher)
            async with EventConsumer(
                rabbitmq_url,
                "worker.order-placed",
                ["order.placed"],
                handler,
                redis,
                remember_prefix=redis_target.prefix,
            ) as consumer:
                for placed in (order_id, cancelled_id, 999_999):  # the last one does not exist
                    await publisher.publish(
                        new_event(OrderPlaced(order_id=placed, user_id=user_id, total=Decimal("1")))
                    )
                for _ in range(100):
                    if (await pg.get(f"/orders/{order_id}")).json()["status"] == "confirmed":
                        break
                    await asyncio.sleep(0.05)
                assert consumer._queues is not None
                parked = await consumer._queues.parking.get(timeout=5)
                await parked.ack()
    finally:
        await redis.aclose()
    assert (await pg.get(f"/orders/{order_id}")).json()["status"] == "confirmed"
    assert (await pg.get(f"/orders/{cancelled_id}")).json()["status"] == "cancelled"
    assert str(parked.headers["x-parking-reason"]) == "permanent: order 999999 does not exist"
    activity = (await mongo.get("/activity", params={"user_id": user_id})).json()["items"]
    assert [a["payload"]["order_id"] for a in activity] == [order_id]
    connection = await aio_pika.connect(rabbitmq_url)
    async with connection:
        announced = await (await connection.channel()).get_queue("bot.order-confirmed")
        message = await announced.get(timeout=5)
        await message.ack()
    _, confirmed = decode(message.body, message.content_type)
    assert confirmed == OrderConfirmed(order_id=order_id, user_id=user_id)
