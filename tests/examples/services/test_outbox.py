"""The transactional outbox of pg_data_service against real PostgreSQL and RabbitMQ."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from urllib.parse import urlsplit

import aio_pika
import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from patterns.testing.servers import in_process
from patterns.testing.tcp_proxy import tcp_proxy
from pg_data_service.outbox import backlog, relay_once
from pg_data_service.settings import Settings
from reference_system.waiting import eventually
from shared.events.envelope import OrderPlaced, decode
from shared.events.publisher import EventPublisher, NotPublished
from tests.examples.services.conftest import auth
from tests.examples.services.test_pg_data_service import ALICE, ITEMS


@pytest.fixture
async def sessions(pg_settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_async_engine(pg_settings.async_database_url)
    yield async_sessionmaker(engine, expire_on_commit=False)
    await engine.dispose()


async def place(pg: httpx.AsyncClient, count: int) -> list[int]:
    user = (await pg.post("/users", json=ALICE)).json()
    return [
        (await pg.post("/orders", json={"user_id": user["id"], "items": ITEMS})).json()["id"]
        for _ in range(count)
    ]


async def received(rabbitmq_url: str, queue: str = "worker.order-placed") -> list[OrderPlaced]:
    """Every order.placed waiting in ``queue`` (taken off it)."""
    connection = await aio_pika.connect(rabbitmq_url)
    events = []
    async with connection:
        channel = await connection.channel()
        source = await channel.get_queue(queue)
        while message := await source.get(fail=False):
            await message.ack()
            _, data = decode(message.body, message.content_type)
            assert isinstance(data, OrderPlaced)
            events.append(data)
    return events


async def test_an_order_and_its_event_are_committed_together_or_not_at_all(
    pg: httpx.AsyncClient, postgres_url: str
) -> None:
    [order_id] = await place(pg, 1)
    await pg.post("/orders", json={"user_id": 999_999, "items": ITEMS})  # fails: no such user
    key = {"Idempotency-Key": "retry-me-please"}
    user_id = (await pg.get(f"/orders/{order_id}")).json()["user_id"]
    for _ in range(2):  # a retried create replays its answer and writes no second event
        await pg.post("/orders", json={"user_id": user_id, "items": ITEMS}, headers=key)
    connection = await asyncpg.connect(postgres_url)
    try:
        rows = await connection.fetch("SELECT event_type, envelope FROM outbox ORDER BY id")
    finally:
        await connection.close()
    assert [row["event_type"] for row in rows] == ["order.placed", "order.placed"]


async def test_the_relay_publishes_with_confirms_and_marks_rows_sent(
    pg: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], rabbitmq_url: str
) -> None:
    ids = await place(pg, 3)
    async with EventPublisher(rabbitmq_url) as publisher:
        assert await relay_once(sessions, publisher) == 3
        assert await relay_once(sessions, publisher) == 0
    assert await backlog(sessions) == 0
    assert [event.order_id for event in await received(rabbitmq_url)] == ids


async def test_concurrent_relays_never_publish_a_row_twice(
    pg: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], rabbitmq_url: str
) -> None:
    ids = await place(pg, 150)

    async def relay(publisher: EventPublisher) -> None:
        while await relay_once(sessions, publisher, batch=10):
            pass

    async with EventPublisher(rabbitmq_url) as first, EventPublisher(rabbitmq_url) as second:
        await asyncio.gather(relay(first), relay(second), relay(first))
    events = await received(rabbitmq_url)
    assert sorted(event.order_id for event in events) == sorted(ids)


async def test_with_the_broker_down_the_outbox_keeps_every_event_and_delivers_it_later(
    pg: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], rabbitmq_url: str
) -> None:
    broker = urlsplit(rabbitmq_url)
    async with tcp_proxy(broker.hostname or "127.0.0.1", broker.port or 5672) as proxy:
        via_proxy = rabbitmq_url.replace(f":{broker.port}/", f":{proxy.port}/")
        async with EventPublisher(via_proxy, timeout=1.0) as publisher:
            await proxy.cut()  # the broker "dies"
            ids = await place(pg, 20)  # orders are still taken: the outbox holds their events
            assert await relay_once(sessions, publisher) == 0
            assert await backlog(sessions) == 20
            await proxy.start()  # the broker is back; the robust connection reconnects by itself

            async def drained() -> bool:
                await relay_once(sessions, publisher)
                return await backlog(sessions) == 0

            await eventually(drained, "the outbox drained after the broker returned", interval=0.2)
    assert sorted(event.order_id for event in await received(rabbitmq_url)) == ids


async def test_the_relay_runs_inside_the_service_when_rabbitmq_is_configured(
    pg_settings: Settings, rabbitmq_url: str
) -> None:
    from pg_data_service.app import create_app

    app: FastAPI = create_app(pg_settings.model_copy(update={"rabbitmq_url": rabbitmq_url}))
    async with in_process(app, headers=auth()) as pg:
        ids = await place(pg, 2)
        events: list[OrderPlaced] = []

        async def both_published() -> bool:
            events.extend(await received(rabbitmq_url))
            return len(events) >= 2

        await eventually(both_published, "both events published by the service's relay", timeout=10)
    assert [event.order_id for event in events] == ids


async def test_publishing_after_the_http_write_loses_the_event_when_the_broker_is_down(
    pg: httpx.AsyncClient, rabbitmq_url: str, postgres_url: str
) -> None:
    """The anti-pattern the outbox replaces: write over HTTP, then publish from the business service."""
    from shared.events.envelope import new_event

    broker = urlsplit(rabbitmq_url)
    async with tcp_proxy(broker.hostname or "127.0.0.1", broker.port or 5672) as proxy:
        via_proxy = rabbitmq_url.replace(f":{broker.port}/", f":{proxy.port}/")
        async with EventPublisher(via_proxy, timeout=1.0) as publisher:
            await proxy.cut()
            [order_id] = await place(pg, 1)  # the write succeeds ...
            with pytest.raises(NotPublished):  # ... the publish after it does not
                await publisher.publish(
                    new_event(OrderPlaced(order_id=order_id, user_id=1, total=Decimal("26.25")))
                )
    # The order exists; nothing anywhere says an event is owed. Only the outbox row (written by
    # pg_data_service in the order's transaction) still has it.
    connection = await asyncpg.connect(postgres_url)
    try:
        owed = await connection.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
    finally:
        await connection.close()
    assert owed == 1
