"""Consume events without losing one, applying one twice, or letting one poison the queue.

* manual ack, and only after the handler's work is done;
* a bounded prefetch, so one consumer never hoards the queue;
* idempotent by event id: a Redis record (with expiry) marks events already handled,
  and the handlers' own writes are idempotent too, for the window between work and record;
* a failing handler is retried later through the retry queue, a bounded number of times;
* a message no retry can fix (malformed, unknown type or version, a permanent error) goes
  to the parking lot with the reason in its headers, and the queue keeps flowing;
* callbacks, not ``queue.iterator()``: aio-pika's robust queue re-registers a callback
  consumer after a reconnect, and OpenTelemetry's aio-pika instrumentation keeps the trace
  context only for callbacks (opentelemetry-python-contrib #2892).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Self

import aio_pika
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection
from aio_pika.exceptions import AMQPError, ChannelInvalidStateError
from opentelemetry import context, trace
from prometheus_client import Counter, Gauge, Histogram
from redis.asyncio import Redis

from shared.events.envelope import KNOWN, Envelope, Event, Rejected, decode
from shared.events.topology import Queues, declare
from shared.observability.logs import REQUEST_ID
from shared.observability.tracing import context_from

log = logging.getLogger(__name__)
type Handler = Callable[[Envelope, Event], Awaitable[None]]

OUTCOMES = Counter("events_consumed", "Messages by consumer and outcome", ["consumer", "outcome"])
SECONDS = Histogram(
    "events_processing_seconds",
    "Handler time per message",
    ["consumer"],
    buckets=(0.005, 0.02, 0.1, 0.5, 2, 10),
)
# Lag is what waits in the queue; a growing parking lot is a bug waiting for a human.
WAITING = Gauge("events_queue_messages", "Messages waiting, as of the consumer's last look", ["queue"])


class Permanent(Exception):
    """Raised by a handler when retrying cannot help: the message is parked at once."""


# --8<-- [start:consumer]
class EventConsumer:
    def __init__(
        self,
        url: str,
        name: str,
        routing_keys: list[str],
        handler: Handler,
        redis: Redis,
        *,
        prefetch: int = 16,
        max_attempts: int = 5,
        retry_delay_ms: int = 1_000,
        remember_seconds: int = 7 * 24 * 3600,
        remember_prefix: str = "events:",
        depth_interval: float = 15.0,
    ) -> None:
        self.url = url
        self.name = name
        self.routing_keys = routing_keys
        self.handler = handler
        self.redis = redis
        self.prefetch = prefetch
        self.max_attempts = max_attempts
        self.retry_delay_ms = retry_delay_ms
        self.remember_seconds = remember_seconds
        self.remember_prefix = remember_prefix
        self.depth_interval = depth_interval
        self._depth: asyncio.Task[None] | None = None
        self._connection: AbstractRobustConnection | None = None
        self._queues: Queues | None = None
        self._tag: str | None = None
        self._in_flight: set[asyncio.Task[object]] = set()

    async def __aenter__(self) -> Self:
        self._connection = await aio_pika.connect_robust(self.url)
        channel = await self._connection.channel(publisher_confirms=True)
        await channel.set_qos(prefetch_count=self.prefetch)
        self._queues = await declare(channel, self.name, self.routing_keys, self.retry_delay_ms)
        self._tag = await self._queues.main.consume(self._on_message)
        self._depth = asyncio.create_task(self._watch_depth())
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Stop taking messages, let the ones in hand finish, then close (the broker requeues the rest)."""
        if self._depth is not None:
            self._depth.cancel()
        if self._queues is not None and self._tag is not None:
            # If the channel is already gone, nothing more will arrive anyway.
            with contextlib.suppress(AMQPError, ChannelInvalidStateError):
                await self._queues.main.cancel(self._tag)
        if self._in_flight:
            await asyncio.wait(self._in_flight, timeout=30)
        if self._connection is not None:
            await self._connection.close()

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._in_flight.add(task)
        # aio-pika's instrumentation has started a consumer span from the message headers. Without it,
        # attach them here. Either way a malformed traceparent starts a new trace and is logged.
        carried = context_from(message.headers or {}, f"{self.name} message {message.message_id}")
        attached = None if trace.get_current_span().get_span_context().is_valid else context.attach(carried)
        request_id = REQUEST_ID.set(message.message_id)
        try:
            with SECONDS.labels(self.name).time():
                await self._handle(message)
        except Exception:
            # Redis down, a republish refused, ...: give it back; the delivery limit stops a loop.
            log.exception("%s: could not settle message %s; requeueing", self.name, message.message_id)
            OUTCOMES.labels(self.name, "requeued").inc()
            await _settle(message.nack(requeue=True))
        finally:
            REQUEST_ID.reset(request_id)
            if attached is not None:
                context.detach(attached)
            self._in_flight.discard(task)

    async def _watch_depth(self) -> None:
        """Export how many messages wait in the main queue and the parking lot."""
        assert self._queues is not None
        while True:
            for queue in (self._queues.main, self._queues.parking):
                try:
                    declared = await queue.declare()  # same arguments: a no-op that reports the count
                    WAITING.labels(queue.name).set(declared.message_count or 0)
                except (AMQPError, ChannelInvalidStateError) as error:
                    log.warning("%s: could not read the depth of %s: %s", self.name, queue.name, error)
            await asyncio.sleep(self.depth_interval)

    async def _handle(self, message: AbstractIncomingMessage) -> None:
        try:
            event, data = decode(message.body, message.content_type)
        except Rejected as rejected:
            await self._park(message, rejected.reason)
            return
        seen = f"{self.remember_prefix}{self.name}:{event.id}"
        if await self.redis.exists(seen):
            OUTCOMES.labels(self.name, "duplicate").inc()
            await _settle(message.ack())
            return
        try:
            await self.handler(event, data)
        except Permanent as error:
            await self._park(message, f"permanent: {error}")
            return
        except Exception as error:
            await self._retry_or_park(message, error)
            return
        await self.redis.set(seen, "1", ex=self.remember_seconds)
        OUTCOMES.labels(self.name, "acked").inc()
        await _settle(message.ack())
        # --8<-- [end:consumer]

    # --8<-- [start:retry]
    async def _retry_or_park(self, message: AbstractIncomingMessage, error: Exception) -> None:
        attempt = int(str((message.headers or {}).get("x-attempt", 1)))
        if attempt >= self.max_attempts:
            await self._park(message, f"gave up after {attempt} attempts: {type(error).__name__}: {error}")
            return
        assert self._queues is not None
        log.warning(
            "%s: attempt %d of %s failed (%s); retrying", self.name, attempt, message.message_id, error
        )
        copy = _copy(message, {"x-attempt": attempt + 1})
        await self._queues.retry_exchange.publish(copy, routing_key=self.name, mandatory=True)
        OUTCOMES.labels(self.name, "retried").inc()
        await _settle(message.ack())  # only after the broker confirmed the copy

    async def _park(self, message: AbstractIncomingMessage, reason: str) -> None:
        assert self._queues is not None
        log.error("%s: parking message %s: %s", self.name, message.message_id, reason)
        headers: dict[str, int | str] = {
            "x-parking-reason": reason[:500],
            "x-parked-at": int(time.time()),
            "x-parked-by": self.name,
        }
        copy = _copy(message, headers)
        await self._queues.dead.publish(copy, routing_key=f"{self.name}.parking-lot", mandatory=True)
        OUTCOMES.labels(self.name, "parked").inc()
        await _settle(message.ack())
        # --8<-- [end:retry]


def _copy(message: AbstractIncomingMessage, headers: dict[str, int | str]) -> aio_pika.Message:
    return aio_pika.Message(
        body=message.body,
        content_type=message.content_type,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=message.message_id,
        correlation_id=message.correlation_id,
        type=message.type if message.type in {t for t, _ in KNOWN} else "unknown",
        headers={**(message.headers or {}), **headers},
    )


async def _settle(outcome: Awaitable[None]) -> None:
    """Ack or nack; if the channel died meanwhile the broker redelivers, which is safe here."""
    try:
        await outcome
    except (AMQPError, ChannelInvalidStateError) as error:
        log.warning("could not settle a message (%s); it will be redelivered", error)
