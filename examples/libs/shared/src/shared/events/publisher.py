"""Publish events so that a publish that returns really is on the broker.

* publisher confirms on: ``publish`` returns only when RabbitMQ has taken
  responsibility for the message (written to its quorum queues);
* ``mandatory``: an event no queue is bound for comes back, and is an error, not a
  silent drop;
* persistent messages, with ``message_id`` (the event id) and ``correlation_id`` set;
* a time limit on every publish: on a reconnecting ``RobustConnection`` a publish can
  hang until the broker returns (aio-pika #636) or raise (#508); either way the caller
  is told "not sent" and keeps the event (the outbox retries it);
* a fresh channel after a nack (:class:`ConfirmedChannel`, which the consumers' retry and
  parking copies use too): RabbitMQ 3.10 nacks every publish of a channel whose first
  publish to a quorum queue came while that queue's leader was down, for as long as the
  channel lives (its queue client keeps asking the dead node).
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from typing import Self

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractRobustConnection
from aio_pika.exceptions import AMQPError, ChannelInvalidStateError, DeliveryError, PublishError
from opentelemetry import context, trace

from shared.events.envelope import MAX_BODY_BYTES, Envelope
from shared.events.topology import EVENTS, declare_all
from shared.observability.tracing import context_from


class NotPublished(Exception):
    """The broker did not confirm the event: keep it and try again later."""


class Unpublishable(ValueError):
    """The event can never be published as it is (over the size consumers accept): do not retry."""


# --8<-- [start:message]
def to_message(event: Envelope, correlation_id: str | None = None) -> aio_pika.Message:
    return aio_pika.Message(
        body=event.model_dump_json().encode(),
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=str(event.id),
        correlation_id=correlation_id or str(event.id),
        type=event.type,
        timestamp=event.occurred_at,
        headers={"event-version": event.version, **event.trace},
    )
    # --8<-- [end:message]


# --8<-- [start:confirmed]
class ConfirmedChannel:
    """Publishes that return only once the broker confirmed them, and raise when returned or nacked.

    After a nack the channel is replaced: RabbitMQ 3.10 nacks every later publish of a channel whose
    first publish to a quorum queue came while that queue's leader was down.
    """

    def __init__(self, connection: AbstractRobustConnection) -> None:
        self.connection = connection
        self._channel: AbstractChannel | None = None
        self._exchanges: dict[str, AbstractExchange] = {}
        self._opening = asyncio.Lock()  # concurrent publishes share one channel, never open two

    async def channel(self) -> AbstractChannel:
        async with self._opening:
            if self._channel is None:
                self._channel = await self.connection.channel(publisher_confirms=True, on_return_raises=True)
                self._exchanges = {}
            return self._channel

    async def publish(self, message: aio_pika.Message, exchange: str, routing_key: str) -> None:
        channel = await self.channel()
        if exchange not in self._exchanges:
            self._exchanges[exchange] = await channel.get_exchange(exchange)
        try:
            await self._exchanges[exchange].publish(message, routing_key=routing_key, mandatory=True)
        except DeliveryError as error:
            if not isinstance(error, PublishError):  # a nack (not a return): this channel is done
                await self.close(channel)
            raise

    async def close(self, channel: AbstractChannel | None = None) -> None:
        """Close ``channel`` (by default the current one); a later publish opens a fresh one. A publish
        nacked on a channel already replaced leaves the replacement alone."""
        channel = channel or self._channel
        if channel is not None and channel is self._channel:
            self._channel = None
        if channel is not None:
            with contextlib.suppress(AMQPError, ChannelInvalidStateError, ConnectionError):
                await channel.close()
                # --8<-- [end:confirmed]


# --8<-- [start:publisher]
class EventPublisher:
    """One robust connection and one confirming channel per process."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self.url = url
        self.timeout = timeout
        self._connection: AbstractRobustConnection | None = None
        self._channel: ConfirmedChannel | None = None

    async def __aenter__(self) -> Self:
        self._connection = await aio_pika.connect_robust(self.url, timeout=self.timeout)
        self._channel = ConfirmedChannel(self._connection)
        await declare_all(await self._channel.channel())
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._connection is not None:
            await self._connection.close()

    async def publish(self, event: Envelope, correlation_id: str | None = None) -> None:
        """Return once the broker confirmed the event; raise :class:`NotPublished` otherwise."""
        if self._channel is None:
            raise RuntimeError("publisher is not open: use 'async with'")
        message = to_message(event, correlation_id)
        if len(message.body) > MAX_BODY_BYTES:  # every consumer would park it: refuse it here
            size = len(message.body)
            raise Unpublishable(
                f"{event.type} {event.id}: {size} bytes, over the {MAX_BODY_BYTES} bytes allowed"
            )
        # Outside any span, publish in the event's own trace: the aio-pika instrumentation writes the
        # current context over the headers, and would otherwise start an unrelated trace.
        outside = not trace.get_current_span().get_span_context().is_valid
        attached = context.attach(context_from(event.trace, f"event {event.id}")) if outside else None
        try:
            async with asyncio.timeout(self.timeout):
                await self._channel.publish(message, EVENTS, routing_key=event.type)
        except TimeoutError as error:
            raise NotPublished(f"{event.type} {event.id}: no confirm within {self.timeout} s") from error
        except (AMQPError, ChannelInvalidStateError, ConnectionError) as error:  # incl. nacked, returned
            raise NotPublished(f"{event.type} {event.id}: {type(error).__name__}: {error}") from error
        except RuntimeError as error:  # aiormq: a fresh channel asked of a connection still reconnecting
            raise NotPublished(f"{event.type} {event.id}: {error}") from error
        finally:
            if attached is not None:
                context.detach(attached)
                # --8<-- [end:publisher]
