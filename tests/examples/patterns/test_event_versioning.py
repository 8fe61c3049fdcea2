"""Event schema evolution on the real broker: today's reader against tomorrow's writer, and the reverse.

"Today's reader" is the consumer as shipped (:data:`shared.events.envelope.EVENTS`: v1 of every
type); "tomorrow's" reads v2 of ``order.placed`` and upcasts v1 (``READERS_V2``). Both are the
same :class:`EventConsumer`, configured as each release configures it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import aio_pika
import pytest
from redis.asyncio import Redis

from patterns.events.versioning import READERS_V2, OrderPlacedV2
from patterns.testing.pytest_fixtures import RedisTarget
from reference_system.waiting import eventually
from shared.events.consumer import EventConsumer
from shared.events.envelope import EVENTS, Envelope, Event, OrderPlaced, Registry, Rejected, decode, new_event
from shared.events.parking_lot import inspect, replay
from shared.events.topology import EVENTS as EXCHANGE

QUEUE = "worker.versioning"
V1 = {"order_id": 7, "user_id": 1, "total": "26.25"}
V2 = {"order_id": 8, "user_id": 1, "total_minor": 1999, "currency": "EUR"}


@pytest.fixture
async def redis(redis_target: RedisTarget) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_target.url)
    yield client
    await client.aclose()


@asynccontextmanager
async def reader(rabbitmq_url: str, redis: Redis, registry: Registry) -> AsyncIterator[list[Event]]:
    """A consumer reading with ``registry``; yields what its handler was given."""
    seen: list[Event] = []

    async def handle(event: Envelope, data: Event) -> None:
        seen.append(data)

    async with EventConsumer(
        rabbitmq_url, QUEUE, ["order.placed"], handle, redis, retry_delays_ms=(), registry=registry
    ):
        yield seen


async def publish(rabbitmq_url: str, *envelopes: dict[str, Any]) -> None:
    """Publish envelopes as a writer of another release would: plain JSON, with confirms."""
    async with await aio_pika.connect(rabbitmq_url) as connection:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)
        for envelope in envelopes:
            body = json.dumps(envelope).encode()
            await exchange.publish(aio_pika.Message(body, content_type="application/json"), "order.placed")


def envelope(version: int, data: dict[str, Any], **added: Any) -> dict[str, Any]:
    event = new_event(OrderPlaced(order_id=1, user_id=1, total=Decimal(1))).model_dump(mode="json")
    return event | {"version": version, "data": data} | added


async def test_today_s_reader_takes_fields_a_newer_writer_added_in_its_stride(
    rabbitmq_url: str, redis: Redis
) -> None:
    """Additive changes need no new version: the reader ignores what it does not know."""
    added = envelope(1, V1 | {"coupon": "WINTER"}, source="pg_data_service")  # data and envelope
    async with reader(rabbitmq_url, redis, EVENTS) as seen:
        await publish(rabbitmq_url, added)
        await eventually(lambda: seen, "the event handled", timeout=10)
    assert seen == [OrderPlaced(order_id=7, user_id=1, total=Decimal("26.25"))]
    assert await inspect(rabbitmq_url, QUEUE) == []


async def test_today_s_reader_parks_v2_and_tomorrow_s_handles_it_on_replay(
    rabbitmq_url: str, redis: Redis
) -> None:
    """A writer upgraded before its readers: nothing is lost, nothing is misread; it waits."""
    async with reader(rabbitmq_url, redis, EVENTS) as seen:
        await publish(rabbitmq_url, envelope(2, V2))
        [parked] = await eventually(lambda: inspect(rabbitmq_url, QUEUE), "v2 parked", timeout=10)
    assert seen == []
    assert "order.placed v2 is newer than this reader (v1): deploy readers before writers" in parked.reason
    async with reader(rabbitmq_url, redis, READERS_V2) as seen:
        assert await replay(rabbitmq_url, QUEUE) == 1
        await eventually(lambda: seen, "the replayed v2 handled", timeout=10)
    assert seen == [OrderPlacedV2(**V2)]


async def test_tomorrow_s_reader_reads_v1_and_v2_in_flight_alike(rabbitmq_url: str, redis: Redis) -> None:
    """During the rolling deploy both versions are in the queue; the handler sees only v2."""
    in_flight = [
        envelope(1, V1),
        envelope(2, V2),
        envelope(1, V1 | {"order_id": 9, "total": "0.10", "coupon": "WINTER"}),
    ]
    async with reader(rabbitmq_url, redis, READERS_V2) as seen:
        await publish(rabbitmq_url, *in_flight)
        await eventually(lambda: len(seen) == 3, "three events handled", timeout=10)
    by_order = {event.order_id: event for event in seen if isinstance(event, OrderPlacedV2)}
    assert by_order == {
        7: OrderPlacedV2(order_id=7, user_id=1, total_minor=2625, currency="EUR"),
        8: OrderPlacedV2(**V2),
        9: OrderPlacedV2(order_id=9, user_id=1, total_minor=10, currency="EUR"),
    }
    assert await inspect(rabbitmq_url, QUEUE) == []


async def test_without_the_upcast_tomorrow_s_reader_parks_every_v1_in_flight(
    rabbitmq_url: str, redis: Redis
) -> None:
    """The counterfactual of the test above: the upcast is what keeps v1 readable."""
    async with reader(rabbitmq_url, redis, Registry(READERS_V2.current)) as seen:
        await publish(rabbitmq_url, envelope(1, V1), envelope(2, V2))
        parked = await eventually(lambda: inspect(rabbitmq_url, QUEUE), "v1 parked", timeout=10)
        await eventually(lambda: seen, "v2 handled", timeout=10)
    assert ["no longer read" in p.reason for p in parked] == [True]
    assert seen == [OrderPlacedV2(**V2)]


@pytest.mark.parametrize(
    "total",
    ["abc", "NaN", "-1", "1e400", "Infinity", [], None, "26.255"],
    ids=["text", "nan", "negative", "huge", "infinity", "list", "null", "sub-cent"],
)
def test_a_v1_the_upcast_cannot_read_is_rejected_with_the_reason(total: Any) -> None:
    body = json.dumps(envelope(1, V1 | {"total": total})).encode()
    with pytest.raises(Rejected, match=r"invalid order.placed v1 data"):
        decode(body, "application/json", READERS_V2)


def test_a_v1_without_its_total_is_rejected_too() -> None:
    body = json.dumps(envelope(1, {"order_id": 7, "user_id": 1})).encode()
    with pytest.raises(Rejected, match=r"invalid order.placed v1 data: KeyError\('total'\)"):
        decode(body, "application/json", READERS_V2)
