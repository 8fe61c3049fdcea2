"""The worker's ``order.placed`` consumer written with FastStream instead of raw aio-pika.

FastStream declares the queue, decodes the body into the annotated pydantic model,
acks after the handler returns and nacks when it raises; it also generates an
AsyncAPI document and ships an in-memory test broker.
"""

from __future__ import annotations

from faststream.rabbit import ExchangeType, QueueType, RabbitBroker, RabbitExchange, RabbitQueue

from shared.events.envelope import Envelope, OrderPlaced

# --8<-- [start:faststream]
EVENTS = RabbitExchange("domain.events", type=ExchangeType.TOPIC, durable=True)
QUEUE = RabbitQueue(
    "faststream.order-placed", queue_type=QueueType.QUORUM, durable=True, routing_key="order.placed"
)


def build(url: str, confirmed: list[int]) -> RabbitBroker:
    """A broker whose subscriber records each placed order it sees in ``confirmed``."""
    broker = RabbitBroker(url)

    @broker.subscriber(QUEUE, EVENTS)
    async def on_order_placed(event: Envelope) -> None:
        data = OrderPlaced.model_validate(event.data)
        confirmed.append(data.order_id)

    return broker
    # --8<-- [end:faststream]
