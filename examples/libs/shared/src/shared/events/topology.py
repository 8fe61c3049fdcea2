"""The RabbitMQ topology, declared in code and safe to declare again on every start.

```
domain.events (topic) ──order.*──▶ <consumer>            quorum, delivery limit ─┐
                                      │ handler fails: republish with attempt+1  │
domain.events.retry (direct) ──▶ <consumer>.retry         quorum, TTL = delay     │
                                      └─ expires: dead-letters back to <consumer> │
domain.events.dead (direct) ──▶ <consumer>.parking-lot   quorum ◀────────────────┘
                                      ▲ poison or out of attempts: republished here with the reason
```
"""

from __future__ import annotations

from dataclasses import dataclass

from aio_pika import ExchangeType
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue
from pamqp.common import FieldTable

# Who listens to what, for the whole system. Every publisher declares all of it on start, so an
# event published before its consumer ever ran waits in the consumer's queue instead of being lost.
SUBSCRIPTIONS: dict[str, list[str]] = {
    "worker.order-placed": ["order.placed"],
    "bot.order-confirmed": ["order.confirmed"],
}

EVENTS = "domain.events"
RETRY = "domain.events.retry"
DEAD = "domain.events.dead"


@dataclass(frozen=True)
class Queues:
    """What a consumer reads from (its queue, its parking lot) and republishes to (retry, dead)."""

    main: AbstractQueue
    parking: AbstractQueue
    retry_exchange: AbstractExchange
    dead: AbstractExchange


# --8<-- [start:declare]
async def declare(
    channel: AbstractChannel,
    consumer: str,
    routing_keys: list[str],
    retry_delay_ms: int = 1_000,
    delivery_limit: int = 20,
) -> Queues:
    """Declare the exchanges and this consumer's three queues; idempotent."""
    events = await channel.declare_exchange(EVENTS, ExchangeType.TOPIC, durable=True)
    retry_exchange = await channel.declare_exchange(RETRY, ExchangeType.DIRECT, durable=True)
    dead = await channel.declare_exchange(DEAD, ExchangeType.DIRECT, durable=True)
    quorum: FieldTable = {"x-queue-type": "quorum"}
    main = await channel.declare_queue(
        consumer,
        durable=True,
        arguments={
            **quorum,
            # A message that crashes its consumer again and again is dead-lettered, not redelivered forever.
            "x-delivery-limit": delivery_limit,
            "x-dead-letter-exchange": DEAD,
            "x-dead-letter-routing-key": f"{consumer}.parking-lot",
        },
    )
    retry = await channel.declare_queue(
        f"{consumer}.retry",
        durable=True,
        arguments={
            **quorum,
            "x-message-ttl": retry_delay_ms,
            "x-dead-letter-exchange": "",  # the default exchange: routes by queue name
            "x-dead-letter-routing-key": consumer,
        },
    )
    parking = await channel.declare_queue(f"{consumer}.parking-lot", durable=True, arguments=quorum)
    for key in routing_keys:
        await main.bind(events, key)
    await retry.bind(retry_exchange, consumer)
    await parking.bind(dead, f"{consumer}.parking-lot")
    return Queues(main=main, parking=parking, retry_exchange=retry_exchange, dead=dead)
    # --8<-- [end:declare]


async def declare_all(channel: AbstractChannel) -> None:
    """Declare every subscription in :data:`SUBSCRIPTIONS` (idempotent)."""
    for consumer, routing_keys in SUBSCRIPTIONS.items():
        await declare(channel, consumer, routing_keys)
