"""The FastStream variant of the consumer: one test, in memory and against the real RabbitMQ."""

from __future__ import annotations

import pytest
from faststream.rabbit import TestRabbitBroker

from patterns.events.faststream_consumer import EVENTS, build
from reference_system.waiting import eventually
from shared.events.envelope import OrderPlaced, new_event

EVENT = new_event(OrderPlaced(order_id=7, user_id=1, total="26.25"))


@pytest.fixture(params=[False, True], ids=["in-memory", "real-broker"])
def with_real(request: pytest.FixtureRequest) -> tuple[bool, str]:
    """In memory the broker URL is never dialled; for real, a vhost of this test's own."""
    if request.param:
        return True, str(request.getfixturevalue("rabbitmq_url"))
    return False, "amqp://unused/"


async def test_the_subscriber_handles_a_placed_order(with_real: tuple[bool, str]) -> None:
    real, url = with_real
    confirmed: list[int] = []
    async with TestRabbitBroker(build(url, confirmed), with_real=real) as broker:
        await broker.publish(EVENT.model_dump(mode="json"), exchange=EVENTS, routing_key="order.placed")
        await eventually(lambda: confirmed, "the subscriber's call", timeout=5)
    assert confirmed == [7]
