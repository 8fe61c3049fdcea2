"""Inspect and replay parked messages: ``uv run python -m shared.events.parking_lot``.

``list`` shows each parked message's id, type and reason without removing it;
``replay`` moves messages back to the consumer's queue with a fresh attempt count,
after you fixed what made them fail. Both work on one consumer's parking lot.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractQueue


@dataclass(frozen=True)
class Parked:
    message_id: str | None
    type: str | None
    reason: str
    parked_by: str
    body: bytes


async def parking_lot(channel: AbstractChannel, consumer: str) -> AbstractQueue:
    """The consumer's parking lot as it is: a passive declare, so nothing of the consumer's queue
    arguments (retry delay, delivery limit) has to be known here, and nothing is created."""
    return await channel.get_queue(f"{consumer}.parking-lot", ensure=True)


# --8<-- [start:parking-lot]
async def inspect(url: str, consumer: str, limit: int = 100) -> list[Parked]:
    """Up to ``limit`` parked messages, oldest first; they stay parked."""
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        parking = await parking_lot(channel, consumer)
        found: list[Parked] = []
        while len(found) < limit and (message := await parking.get(fail=False)):
            headers = message.headers or {}
            reason, by = str(headers.get("x-parking-reason", "?")), str(headers.get("x-parked-by", "?"))
            found.append(Parked(message.message_id, message.type, reason, by, message.body))
        # Closing the channel without acking returns every message we looked at, in order.
    return found


async def replay(url: str, consumer: str, limit: int = 1000) -> int:
    """Move up to ``limit`` parked messages back to ``consumer``'s queue; return how many."""
    connection = await aio_pika.connect(url)
    moved = 0
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        parking = await parking_lot(channel, consumer)
        while moved < limit and (message := await parking.get(fail=False)):
            headers = {k: v for k, v in (message.headers or {}).items() if not k.startswith("x-")}
            copy = aio_pika.Message(
                message.body,
                headers=headers,
                content_type=message.content_type,
                message_id=message.message_id,
                correlation_id=message.correlation_id,
                type=message.type,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            )
            await channel.default_exchange.publish(copy, routing_key=consumer, mandatory=True)
            await message.ack()  # only once the copy is confirmed
            moved += 1
    return moved
    # --8<-- [end:parking-lot]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.events.parking_lot", description=__doc__)
    parser.add_argument("action", choices=["list", "replay"])
    parser.add_argument("consumer", help="the consumer's queue, e.g. worker.order-placed")
    parser.add_argument("--url", default=os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/"))
    parser.add_argument("--limit", type=int, default=100)
    args = parser.parse_args(argv)
    try:
        if args.action == "list":
            parked = asyncio.run(inspect(args.url, args.consumer, args.limit))
            for item in parked:
                print(f"{item.message_id}\t{item.type}\t{item.reason}")
            print(f"{len(parked)} parked message(s) in {args.consumer}.parking-lot", file=sys.stderr)
        else:
            moved = asyncio.run(replay(args.url, args.consumer, args.limit))
            print(f"replayed {moved} message(s) to {args.consumer}", file=sys.stderr)
    except aio_pika.exceptions.ChannelNotFoundEntity as error:
        print(
            f"parking_lot: no parking lot {args.consumer}.parking-lot on this broker: {error}",
            file=sys.stderr,
        )
        return 1
    except (OSError, aio_pika.exceptions.AMQPError) as error:
        print(f"parking_lot: cannot reach RabbitMQ at {args.url.split('@')[-1]}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
