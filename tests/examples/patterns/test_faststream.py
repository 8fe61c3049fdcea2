"""The FastStream variant of the consumer: in memory, and against the real RabbitMQ (same test code)."""

from __future__ import annotations

import asyncio

import pytest
from faststream.rabbit import TestRabbitBroker

from patterns.events.faststream_consumer import EVENTS, build
from shared.events.envelope import OrderPlaced, new_event

EVENT = new_event(OrderPlaced(order_id=7, user_id=1, total="26.25"))


async def test_in_memory() -> None:
    confirmed: list[int] = []
    broker = build("amqp://unused/", confirmed)
    async with TestRabbitBroker(broker) as test_broker:
        await test_broker.publish(EVENT.model_dump(mode="json"), exchange=EVENTS, routing_key="order.placed")
    assert confirmed == [7]


@pytest.mark.parametrize("with_real", [True])
async def test_against_the_real_broker(rabbitmq_url: str, with_real: bool) -> None:
    confirmed: list[int] = []
    broker = build(rabbitmq_url, confirmed)
    async with TestRabbitBroker(broker, with_real=with_real) as test_broker:
        await test_broker.publish(EVENT.model_dump(mode="json"), exchange=EVENTS, routing_key="order.placed")
        for _ in range(100):
            if confirmed:
                break
            await asyncio.sleep(0.05)
    assert confirmed == [7]
