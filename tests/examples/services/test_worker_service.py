"""The worker's job over the real data services, its loop, and its shutdown as a real process."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from decimal import Decimal

import aio_pika
import httpx
import pytest
from prometheus_client import REGISTRY
from pydantic import SecretStr
from redis.asyncio import Redis

from patterns.testing.pytest_fixtures import RedisTarget
from reference_system.ports import free_port
from reference_system.waiting import eventually
from shared.clients.mongo import MongoDataClient
from shared.clients.pg import PgDataClient
from shared.events.consumer import EventConsumer
from shared.events.envelope import (
    Envelope,
    Event,
    OrderCancelled,
    OrderConfirmed,
    OrderPlaced,
    decode,
    new_event,
)
from shared.events.parking_lot import inspect
from shared.events.publisher import EventPublisher
from shared.lifecycle import Lifecycle
from tests.examples.services.conftest import TOKENS
from tests.examples.services.test_pg_data_service import ALICE, ITEMS
from worker_service.consumers import on_order_cancelled, on_order_placed
from worker_service.jobs import cancel_late_orders, confirm, confirm_placed_orders
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


def confirmed(pg: httpx.AsyncClient, order_id: int) -> Callable[[], Awaitable[bool]]:
    """A check for :func:`eventually`: is the order confirmed yet?"""

    async def check() -> bool:
        return bool((await pg.get(f"/orders/{order_id}")).json()["status"] == "confirmed")

    return check


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


async def test_an_order_cancelled_meanwhile_is_skipped_and_its_record_withdrawn(
    pg: httpx.AsyncClient, mongo: httpx.AsyncClient, pg_url: str, mongo_url: str
) -> None:
    user_id, [order_id] = await place_orders(pg, 1)
    token = SecretStr(TOKENS["worker"])
    async with PgDataClient(pg_url, token) as pg_client, MongoDataClient(mongo_url, token) as mongo_client:
        page = await pg_client.list_orders()
        await pg.post(f"/orders/{order_id}/cancellation", json={"reason": "customer"})

        async def stale_list(**_: object) -> object:
            return page  # what the worker read just before the cancel

        pg_client.list_orders = stale_list  # type: ignore[assignment,method-assign]
        skipped_before = skipped()
        assert await confirm_placed_orders(pg_client, mongo_client) == 0
        assert await confirm_placed_orders(pg_client, mongo_client) == 0  # a repeat adds nothing
    assert (await pg.get(f"/orders/{order_id}")).json()["status"] == "cancelled"
    assert skipped() - skipped_before == 2
    # The record appended before the refused confirm, and the compensation that undoes it.
    assert await kinds(mongo, user_id) == ["order.confirmation_withdrawn", "order.confirmed"]


async def test_a_record_of_a_real_confirmation_is_not_withdrawn_when_the_order_is_cancelled_later(
    pg: httpx.AsyncClient, mongo: httpx.AsyncClient, pg_url: str, mongo_url: str
) -> None:
    """The job and the event handler both confirm: one wins, the user cancels, the other is refused.
    The order was confirmed, so the record stays true (the cancellation has its own record)."""
    user_id, [order_id] = await place_orders(pg, 1)
    token = SecretStr(TOKENS["worker"])
    async with PgDataClient(pg_url, token) as pg_client, MongoDataClient(mongo_url, token) as mongo_client:
        seen = await pg_client.get_order(order_id)
        assert await confirm(pg_client, mongo_client, seen)  # the path that won
        await pg.post(f"/orders/{order_id}/cancellation", json={"reason": "customer"})
        assert not await confirm(pg_client, mongo_client, seen)  # the other path, refused
    assert await kinds(mongo, user_id) == ["order.confirmed"]


async def test_a_cancellation_is_recorded_once_however_often_it_is_handled(
    pg: httpx.AsyncClient, mongo: httpx.AsyncClient, pg_url: str, mongo_url: str
) -> None:
    user_id, [order_id] = await place_orders(pg, 1)
    await pg.post(f"/orders/{order_id}/cancellation", json={"reason": "customer"})
    cancelled = OrderCancelled(order_id=order_id, user_id=user_id, reason="customer")
    event = new_event(cancelled)
    token = SecretStr(TOKENS["worker"])
    async with PgDataClient(pg_url, token) as pg_client, MongoDataClient(mongo_url, token) as mongo_client:
        handle = on_order_cancelled(pg_client, mongo_client)
        await handle(event, cancelled)
        await handle(event, cancelled)  # redelivered, or the same cancel announced by a retried relay
    items = (await mongo.get("/activity", params={"user_id": user_id})).json()["items"]
    assert [(i["kind"], i["payload"]) for i in items] == [
        ("order.cancelled", {"order_id": order_id, "reason": "customer"})
    ]


@pytest.mark.parametrize("path", ["order.placed redelivered", "order.cancelled"])
async def test_a_worker_that_died_between_its_two_steps_is_compensated_for(
    pg: httpx.AsyncClient, mongo: httpx.AsyncClient, pg_url: str, mongo_url: str, path: str
) -> None:
    """The first step ran, the worker died, the user cancelled: whichever handler meets the order
    next finds the record by its key and withdraws it."""
    user_id, [order_id] = await place_orders(pg, 1)
    token = SecretStr(TOKENS["worker"])
    async with PgDataClient(pg_url, token) as pg_client, MongoDataClient(mongo_url, token) as mongo_client:
        placed = await pg_client.get_order(order_id)
        record = {"order_id": order_id, "total": str(placed.total)}
        # confirm's first step, then the process died
        await mongo_client.append_activity(user_id, "order.confirmed", record, f"order-confirmed-{order_id}")
        await pg.post(f"/orders/{order_id}/cancellation", json={"reason": "customer"})
        if path == "order.cancelled":
            data: Event = OrderCancelled(order_id=order_id, user_id=user_id, reason="customer")
            await on_order_cancelled(pg_client, mongo_client)(new_event(data), data)
        else:
            data = OrderPlaced(order_id=order_id, user_id=user_id, total=placed.total)
            unopened = EventPublisher(
                f"amqp://127.0.0.1:{free_port()}/"
            )  # a cancelled order announces nothing
            await on_order_placed(pg_client, mongo_client, unopened)(new_event(data), data)
    also = ["order.cancelled"] if path == "order.cancelled" else []
    assert sorted(await kinds(mongo, user_id)) == sorted(
        ["order.confirmed", "order.confirmation_withdrawn", *also]
    )


async def kinds(mongo: httpx.AsyncClient, user_id: int) -> list[str]:
    """The user's activity, newest first."""
    items = (await mongo.get("/activity", params={"user_id": user_id})).json()["items"]
    return [item["kind"] for item in items]


async def test_the_timeout_cancels_late_orders_even_with_mongodb_down(
    pg: httpx.AsyncClient, pg_url: str
) -> None:
    _, ids = await place_orders(pg, 3)
    token = SecretStr(TOKENS["worker"])
    mongo_down = f"http://127.0.0.1:{free_port()}"  # nothing listens: every call to it fails
    async with (
        PgDataClient(pg_url, token) as pg_client,
        MongoDataClient(mongo_down, token, attempts=1) as mongo_client,
    ):
        assert await confirm_placed_orders(pg_client, mongo_client, confirm_within=timedelta(0)) == 0
    orders = [(await pg.get(f"/orders/{order_id}")).json() for order_id in ids]
    assert {(o["status"], o["cancellation_reason"]) for o in orders} == {
        ("cancelled", "not_confirmed_in_time")
    }


async def test_the_timeout_leaves_an_order_confirmed_since_it_was_listed(
    pg: httpx.AsyncClient, pg_url: str
) -> None:
    _, [order_id] = await place_orders(pg, 1)
    token = SecretStr(TOKENS["worker"])
    async with PgDataClient(pg_url, token) as pg_client:
        page = await pg_client.list_orders()
        await pg.patch(f"/orders/{order_id}", json={"status": "confirmed"}, headers={"If-Match": '"1"'})

        async def stale_list(**_: object) -> object:
            return page  # listed as placed, confirmed just after

        pg_client.list_orders = stale_list  # type: ignore[assignment,method-assign]
        assert await cancel_late_orders(pg_client, timedelta(0)) == 0
    assert (await pg.get(f"/orders/{order_id}")).json()["status"] == "confirmed"


def skipped() -> float:
    return REGISTRY.get_sample_value("worker_orders_skipped_total") or 0.0


async def test_a_stop_in_the_middle_of_a_run_lets_the_run_finish_then_ends_the_loop() -> None:
    stop = asyncio.Event()
    finished: list[str] = []

    async def job() -> None:
        stop.set()  # a SIGTERM arrives in the middle of the run ...
        await asyncio.sleep(0.01)  # ... while its write is still in flight
        finished.append("done")

    await asyncio.wait_for(run_periodically("slow", job, interval=60, stop=stop), timeout=2)
    assert finished == ["done"]  # a loop that cancelled the run on stop would leave it empty


async def test_a_failing_run_is_counted_and_the_loop_goes_on() -> None:
    stop = asyncio.Event()
    calls = 0

    async def flaky() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("data service hiccup")
        stop.set()

    def runs(outcome: str) -> float:
        return REGISTRY.get_sample_value("worker_job_runs_total", {"job": "flaky", "outcome": outcome}) or 0.0

    before = runs("error"), runs("ok")
    await asyncio.wait_for(run_periodically("flaky", flaky, interval=0.01, stop=stop), timeout=2)
    assert calls == 2
    assert (runs("error") - before[0], runs("ok") - before[1]) == (1, 1)


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
    life = Lifecycle()
    worker = asyncio.create_task(run(settings, life))
    try:
        await eventually(confirmed(pg, order_id), f"order {order_id} confirmed", interval=0.05)
    finally:
        life.stop()  # as SIGTERM does
        await asyncio.wait_for(worker, timeout=5)
    assert life.crash is None


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
            handle = on_order_placed(pg_client, mongo_client, publisher)
            handled: list[int] = []

            async def handler(event: Envelope, data: Event) -> None:
                try:
                    await handle(event, data)
                finally:  # seen from outside the consumer: this event's handling is over
                    assert isinstance(data, OrderPlaced)
                    handled.append(data.order_id)

            async with EventConsumer(
                rabbitmq_url,
                "worker.order-placed",
                ["order.placed"],
                handler,
                redis,
                remember_prefix=redis_target.prefix,
            ):
                for placed in (order_id, cancelled_id, 999_999):  # the last one does not exist
                    await publisher.publish(
                        new_event(OrderPlaced(order_id=placed, user_id=user_id, total=Decimal("1")))
                    )
                every = {order_id, cancelled_id, 999_999}
                await eventually(lambda: every <= set(handled), "the three events handled", timeout=10)
                [parked] = await eventually(
                    lambda: inspect(rabbitmq_url, "worker.order-placed"), "the unknown order parked"
                )
    finally:
        await redis.aclose()
    assert (await pg.get(f"/orders/{order_id}")).json()["status"] == "confirmed"
    assert (await pg.get(f"/orders/{cancelled_id}")).json()["status"] == "cancelled"
    assert parked.reason == "permanent: order 999999 does not exist"
    activity = (await mongo.get("/activity", params={"user_id": user_id})).json()["items"]
    assert [a["payload"]["order_id"] for a in activity] == [order_id]
    connection = await aio_pika.connect(rabbitmq_url)
    async with connection:
        announced = await (await connection.channel()).get_queue("bot.order-confirmed")
        message = await announced.get(timeout=5)
        await message.ack()
    _, confirmed = decode(message.body, message.content_type)
    assert confirmed == OrderConfirmed(order_id=order_id, user_id=user_id)


async def test_handling_one_order_placed_twice_announces_one_event_id(
    pg: httpx.AsyncClient, pg_url: str, mongo_url: str, rabbitmq_url: str
) -> None:
    """A redelivery after the publish and before the ack runs the handler again: the second
    ``order.confirmed`` carries the same id, so the bot's de-duplication drops it."""
    user_id, [order_id] = await place_orders(pg, 1)
    cause = new_event(OrderPlaced(order_id=order_id, user_id=user_id, total=Decimal("26.25")))
    _, placed = decode(cause.model_dump_json().encode(), "application/json")
    token = SecretStr(TOKENS["worker"])
    async with (
        PgDataClient(pg_url, token) as pg_client,
        MongoDataClient(mongo_url, token) as mongo_client,
        EventPublisher(rabbitmq_url) as publisher,
    ):
        handle = on_order_placed(pg_client, mongo_client, publisher)
        await handle(cause, placed)
        await handle(cause, placed)  # the redelivery
    connection = await aio_pika.connect(rabbitmq_url)
    async with connection:
        announced = await (await connection.channel()).get_queue("bot.order-confirmed")
        ids = []
        for _ in range(2):
            message = await announced.get(timeout=5)
            await message.ack()
            ids.append(message.message_id)
    assert ids == [str(uuid.uuid5(cause.id, "order.confirmed"))] * 2
