"""The transactional outbox of pg_data_service against real PostgreSQL and RabbitMQ."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import aio_pika
import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from patterns.testing.servers import in_process
from patterns.testing.tcp_proxy import tcp_proxy
from pg_data_service import outbox_quarantine
from pg_data_service.outbox import Measured, measure, relay_once, run_relay, watch_outbox
from pg_data_service.settings import Settings
from pg_data_service.tables import OutboxRow
from reference_system.waiting import eventually
from shared.events.envelope import Envelope, OrderPlaced, new_event
from shared.events.publisher import EventPublisher, NotPublished
from shared.events.topology import EVENTS
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


async def received(rabbitmq_url: str, queue: str = "worker.order-placed") -> list[Envelope]:
    """Every event waiting in ``queue``, in the queue's order (taken off it)."""
    connection = await aio_pika.connect(rabbitmq_url)
    events = []
    async with connection:
        channel = await connection.channel()
        source = await channel.get_queue(queue)
        while message := await source.get(fail=False):
            await message.ack()
            events.append(Envelope.model_validate_json(message.body))
    return events


def orders_of(events: list[Envelope]) -> list[int]:
    return [event.data["order_id"] for event in events]


def placed(order_id: int, nth: int = 1) -> dict[str, Any]:
    """An order.placed envelope as the repository writes it; ``nth`` (the total) tells one order's apart."""
    return new_event(OrderPlaced(order_id=order_id, user_id=1, total=Decimal(nth))).model_dump(mode="json")


async def write(sessions: async_sessionmaker[AsyncSession], *envelopes: dict[str, Any]) -> list[int]:
    """Outbox rows written one transaction after another, as requests write them; their ids."""
    ids = []
    for envelope in envelopes:
        async with sessions() as session, session.begin():
            row = OutboxRow(event_id=envelope["id"], event_type=envelope["type"], envelope=envelope)
            session.add(row)
            await session.flush()
            ids.append(row.id)
    return ids


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
    assert (await measure(sessions)).backlog == 0
    assert orders_of(await received(rabbitmq_url)) == ids


async def test_concurrent_relays_publish_each_row_once_and_each_order_in_order(
    sessions: async_sessionmaker[AsyncSession], rabbitmq_url: str
) -> None:
    await write(sessions, *(placed(order, nth) for nth in range(1, 6) for order in range(1, 31)))

    async def relay(publisher: EventPublisher) -> None:
        while await relay_once(sessions, publisher, batch=10):
            pass

    async with EventPublisher(rabbitmq_url) as first, EventPublisher(rabbitmq_url) as second:
        await asyncio.gather(relay(first), relay(second), relay(first))
    events = await received(rabbitmq_url)
    assert len(events) == len({event.id for event in events}) == 150
    for order in range(1, 31):
        assert [e.data["total"] for e in events if e.data["order_id"] == order] == ["1", "2", "3", "4", "5"]


class Held(EventPublisher):
    """A real publisher whose publishes wait for ``release``: a relay caught in the middle of a batch."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.publishing = asyncio.Event()
        self.release = asyncio.Event()

    async def publish(self, event: Envelope, correlation_id: str | None = None) -> None:
        self.publishing.set()
        await self.release.wait()
        await super().publish(event, correlation_id)


class Overlapping(EventPublisher):
    """A real publisher that lets its publishes go only once ``width`` of them are in flight together."""

    def __init__(self, url: str, width: int) -> None:
        super().__init__(url)
        self.in_flight, self.width, self.widest = 0, width, 0
        self.all_in = asyncio.Event()

    async def publish(self, event: Envelope, correlation_id: str | None = None) -> None:
        self.in_flight += 1
        self.widest = max(self.widest, self.in_flight)
        if self.in_flight >= self.width:
            self.all_in.set()
        await self.all_in.wait()
        try:
            await super().publish(event, correlation_id)
        finally:
            self.in_flight -= 1


async def test_a_batch_is_published_at_once_one_event_per_order_and_each_confirmed(
    sessions: async_sessionmaker[AsyncSession], rabbitmq_url: str
) -> None:
    """Pipelined: a batch's events wait for their confirms together (a relay publishing one at a time
    never has two in flight, and this test times out), yet an order's second event waits for the next
    batch."""
    await write(sessions, *(placed(order) for order in range(1, 6)), placed(1, 2))
    async with Overlapping(rabbitmq_url, width=5) as publisher:
        assert await asyncio.wait_for(relay_once(sessions, publisher), timeout=10) == 5
        assert publisher.widest == 5
        assert await relay_once(sessions, publisher) == 1
    events = await received(rabbitmq_url)
    assert sorted(e.data["order_id"] for e in events[:5]) == [1, 2, 3, 4, 5]
    assert (events[5].data["order_id"], events[5].data["total"]) == (1, "2")


async def test_a_relay_never_overtakes_another_within_an_order(
    sessions: async_sessionmaker[AsyncSession], rabbitmq_url: str
) -> None:
    await write(sessions, placed(1, 1), placed(1, 2), placed(2, 1))
    async with Held(rabbitmq_url) as slow, EventPublisher(rabbitmq_url) as fast:
        first = asyncio.create_task(relay_once(sessions, slow, batch=1))  # takes order 1's first event
        await asyncio.wait_for(slow.publishing.wait(), timeout=5)
        # Given the first relay is publishing order 1's first event, when a second relay runs,
        # then it publishes order 2's event and leaves order 1's second one waiting.
        assert await relay_once(sessions, fast) == 1
        slow.release.set()
        assert await first == 1
        assert await relay_once(sessions, fast) == 1
    events = await received(rabbitmq_url)
    assert [(e.data["order_id"], e.data["total"]) for e in events] == [(2, "1"), (1, "1"), (1, "2")]


async def test_a_row_the_relay_cannot_publish_is_quarantined_with_its_reason_and_the_rest_flow(
    sessions: async_sessionmaker[AsyncSession], rabbitmq_url: str
) -> None:
    ids = await write(
        sessions,
        placed(1) | {"tenant": "acme"},  # a field a newer version added: this version cannot read it
        placed(2),
        placed(3) | {"type": "order.shipped"},  # no queue is bound for it: the broker returns it
        placed(4),
        placed(5) | {"data": placed(5)["data"] | {"note": "x" * 70_000}},  # over what consumers take
        placed(6),
        placed(1, 2),  # order 1's next event: it waits behind the quarantined one
    )
    async with EventPublisher(rabbitmq_url) as publisher:
        assert await relay_once(sessions, publisher) == 3
        assert await relay_once(sessions, publisher) == 0
    assert orders_of(await received(rabbitmq_url)) == [2, 4, 6]
    async with sessions() as session:
        rows = {row.id: row for row in await session.scalars(select(OutboxRow))}
    assert rows[ids[0]].quarantine_reason == "unreadable envelope: tenant: Extra inputs are not permitted"
    assert "refused by the broker" in (reason := rows[ids[2]].quarantine_reason or "")
    assert "NO_ROUTE" in reason
    assert (rows[ids[4]].quarantine_reason or "").startswith("unpublishable: ")
    assert (rows[ids[6]].published_at, rows[ids[6]].quarantined_at) == (None, None)
    # Nothing the relay could publish is left: four rows wait for an operator, and the gauges say so.
    assert await measure(sessions) == Measured(backlog=0, oldest_age_seconds=0, quarantined=4)


async def test_a_replayed_row_is_published_before_the_events_of_its_order_that_waited(
    sessions: async_sessionmaker[AsyncSession],
    rabbitmq_url: str,
    postgres_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shipped, then = placed(3) | {"type": "order.shipped"}, placed(3, 2)
    ids = await write(sessions, shipped, then)
    async with EventPublisher(rabbitmq_url) as publisher:
        assert await relay_once(sessions, publisher) == 0  # quarantined: nobody listens to order.shipped
        # The fix: the consumer of order.shipped is deployed. Then the operator replays the row.
        connection = await aio_pika.connect(rabbitmq_url)
        async with connection:
            channel = await connection.channel()
            queue = await channel.declare_queue("shipping.orders", durable=True)
            await queue.bind(EVENTS, "order.*")
        monkeypatch.setenv("DATABASE_URL", postgres_url)
        assert await asyncio.to_thread(outbox_quarantine.main, ["replay", "--id", str(ids[0])]) == 0
        assert await relay_once(sessions, publisher) == 1
        assert await relay_once(sessions, publisher) == 1
    assert [event.id for event in await received(rabbitmq_url, "shipping.orders")] == [
        uuid.UUID(shipped["id"]),
        uuid.UUID(then["id"]),
    ]


def gauge(name: str) -> float:
    """The value /metrics shows for ``name`` in this process."""
    value = REGISTRY.get_sample_value(name)
    assert value is not None
    return value


async def test_a_relay_stuck_on_a_failure_still_shows_its_backlog_growing(
    pg: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], rabbitmq_url: str
) -> None:
    broker = urlsplit(rabbitmq_url)
    stop = asyncio.Event()
    async with tcp_proxy((broker.hostname or "127.0.0.1", broker.port or 5672)) as proxy:
        via_proxy = rabbitmq_url.replace(f":{broker.port}/", f":{proxy.port}/")
        async with EventPublisher(via_proxy, timeout=0.5) as publisher, asyncio.TaskGroup() as jobs:
            jobs.create_task(run_relay(sessions, publisher, stop))
            jobs.create_task(watch_outbox(sessions, stop, every=0.1))
            await proxy.cut()  # the relay fails every round from now on
            await place(pg, 3)
            await eventually(lambda: gauge("outbox_backlog") == 3, "the gauge shows 3 rows", timeout=5)
            age = gauge("outbox_oldest_unsent_age_seconds")
            await eventually(
                lambda: gauge("outbox_oldest_unsent_age_seconds") > age + 0.5, "the age grows", timeout=5
            )
            stop.set()


async def test_with_the_broker_down_the_outbox_keeps_every_event_and_delivers_it_later(
    pg: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], rabbitmq_url: str
) -> None:
    broker = urlsplit(rabbitmq_url)
    async with tcp_proxy((broker.hostname or "127.0.0.1", broker.port or 5672)) as proxy:
        via_proxy = rabbitmq_url.replace(f":{broker.port}/", f":{proxy.port}/")
        async with EventPublisher(via_proxy, timeout=1.0) as publisher:
            await proxy.cut()  # the broker "dies"
            ids = await place(pg, 20)  # orders are still taken: the outbox holds their events
            assert await relay_once(sessions, publisher) == 0
            assert (await measure(sessions)).backlog == 20
            await proxy.start()  # the broker is back; the robust connection reconnects by itself

            async def drained() -> bool:
                await relay_once(sessions, publisher)
                return (await measure(sessions)).backlog == 0

            await eventually(drained, "the outbox drained after the broker returned", interval=0.2)
    assert sorted(orders_of(await received(rabbitmq_url))) == ids


async def test_the_relay_runs_inside_the_service_when_rabbitmq_is_configured(
    pg_settings: Settings, rabbitmq_url: str
) -> None:
    from pg_data_service.app import create_app

    app: FastAPI = create_app(pg_settings.model_copy(update={"rabbitmq_url": rabbitmq_url}))
    async with in_process(app, headers=auth()) as pg:
        ids = await place(pg, 2)
        events: list[Envelope] = []

        async def both_published() -> bool:
            events.extend(await received(rabbitmq_url))
            return len(events) >= 2

        await eventually(both_published, "both events published by the service's relay", timeout=10)
    assert orders_of(events) == ids


async def test_publishing_after_the_http_write_loses_the_event_when_the_broker_is_down(
    pg: httpx.AsyncClient, rabbitmq_url: str, postgres_url: str
) -> None:
    """The anti-pattern the outbox replaces: write over HTTP, then publish from the business service."""
    from shared.events.envelope import new_event

    broker = urlsplit(rabbitmq_url)
    async with tcp_proxy((broker.hostname or "127.0.0.1", broker.port or 5672)) as proxy:
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
