"""The RabbitMQ topology, declared in code and safe to declare again on every start.

```
domain.events (topic) ──order.*──▶ <consumer>               quorum, delivery limit ─┐
                                      │ attempt n fails: republish with attempt n+1   │
domain.events.retry (direct) ──▶ <consumer>.retry.<delay>    one per delay: 1 s … 5 min │
                                      └─ TTL expires: dead-letters back to <consumer>  │
domain.events.dead (direct) ──▶ <consumer>.parking-lot      quorum ◀───────────────────┘
                                      ▲ poison or out of attempts: republished here with the reason
```

Dead-lettering between quorum queues is at-least-once (``x-dead-letter-strategy``): the broker
keeps a message in its queue until the target queue has confirmed it, so a delay or a delivery
limit never drops one. At-least-once needs ``x-overflow: reject-publish``.
"""

from __future__ import annotations

from dataclasses import dataclass

from aio_pika import ExchangeType
from aio_pika.abc import AbstractChannel, AbstractQueue
from pamqp.common import FieldTable

# --8<-- [start:subscriptions]
# Who listens to what, for the whole system. Every publisher declares all of it on start, so an
# event published before its consumer ever ran waits in the consumer's queue instead of being lost.
SUBSCRIPTIONS: dict[str, list[str]] = {
    "worker.order-placed": ["order.placed"],
    "worker.order-cancelled": ["order.cancelled"],
    "bot.order-confirmed": ["order.confirmed"],
    "bot.order-cancelled": ["order.cancelled"],
}
# --8<-- [end:subscriptions]

# How long a failed message waits before attempt 2, 3, ...: growing, so an outage of a data service
# or Redis of up to two minutes parks nothing (attempt 5 comes 156 s after the first), and the last
# attempt comes 7.6 minutes after the first. Then the message is parked.
RETRY_DELAYS_MS = (1_000, 5_000, 30_000, 120_000, 300_000)

EVENTS = "domain.events"
RETRY = "domain.events.retry"
DEAD = "domain.events.dead"


@dataclass(frozen=True)
class Queues:
    """What a consumer reads from: its queue, and its parking lot."""

    main: AbstractQueue
    parking: AbstractQueue


def retry_queue(consumer: str, delay_ms: int) -> str:
    return f"{consumer}.retry.{delay_ms}ms"


# --8<-- [start:declare]
async def declare(
    channel: AbstractChannel,
    consumer: str,
    routing_keys: list[str],
    retry_delays_ms: tuple[int, ...] = RETRY_DELAYS_MS,
    delivery_limit: int = 20,
) -> Queues:
    """Declare the exchanges and this consumer's queues; idempotent."""
    events = await channel.declare_exchange(EVENTS, ExchangeType.TOPIC, durable=True)
    retry_exchange = await channel.declare_exchange(RETRY, ExchangeType.DIRECT, durable=True)
    dead = await channel.declare_exchange(DEAD, ExchangeType.DIRECT, durable=True)
    # Quorum queues that dead-letter at least once: a message stays until its target confirmed it.
    quorum: FieldTable = {
        "x-queue-type": "quorum",
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }
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
    for delay_ms in retry_delays_ms:
        retry = await channel.declare_queue(
            retry_queue(consumer, delay_ms),
            durable=True,
            arguments={
                **quorum,
                "x-message-ttl": delay_ms,
                "x-dead-letter-exchange": "",  # the default exchange: routes by queue name
                "x-dead-letter-routing-key": consumer,
            },
        )
        await retry.bind(retry_exchange, retry.name)
    parking = await channel.declare_queue(
        f"{consumer}.parking-lot", durable=True, arguments={"x-queue-type": "quorum"}
    )
    for key in routing_keys:
        await main.bind(events, key)
    await parking.bind(dead, f"{consumer}.parking-lot")
    return Queues(main=main, parking=parking)
    # --8<-- [end:declare]


async def declare_all(channel: AbstractChannel) -> None:
    """Declare every subscription in :data:`SUBSCRIPTIONS` (idempotent)."""
    for consumer, routing_keys in SUBSCRIPTIONS.items():
        await declare(channel, consumer, routing_keys)
