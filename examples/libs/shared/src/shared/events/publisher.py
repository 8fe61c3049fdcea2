"""Publish events so that a publish that returns really is on the broker.

* publisher confirms on: ``publish`` returns only when RabbitMQ has taken
  responsibility for the message (written to its quorum queues);
* ``mandatory``: an event no queue is bound for comes back, and is an error, not a
  silent drop;
* persistent messages, with ``message_id`` (the event id) and ``correlation_id`` set;
* a time limit on every publish: on a reconnecting ``RobustConnection`` a publish can
  hang until the broker returns (aio-pika #636) or raise (#508); either way the caller
  is told "not sent" and keeps the event (the outbox retries it);
* a fresh channel after a nack: RabbitMQ 3.10 nacks every publish of a channel whose first
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

from shared.events.envelope import MAX_BODY_BYTES, Envelope
from shared.events.topology import EVENTS, declare_all


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


# --8<-- [start:publisher]
class EventPublisher:
    """One robust connection and one confirming channel per process."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self.url = url
        self.timeout = timeout
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._nacked = False

    async def __aenter__(self) -> Self:
        self._connection = await aio_pika.connect_robust(self.url, timeout=self.timeout)
        await self._open_channel()
        return self

    async def _open_channel(self) -> None:
        assert self._connection is not None
        if self._channel is not None:  # after a nack: this one is done
            with contextlib.suppress(AMQPError, ChannelInvalidStateError, ConnectionError):
                await self._channel.close()
        self._channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
        await declare_all(self._channel)
        self._exchange = await self._channel.get_exchange(EVENTS)
        self._nacked = False

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._connection is not None:
            await self._connection.close()

    async def publish(self, event: Envelope, correlation_id: str | None = None) -> None:
        """Return once the broker confirmed the event; raise :class:`NotPublished` otherwise."""
        if self._exchange is None:
            raise RuntimeError("publisher is not open: use 'async with'")
        message = to_message(event, correlation_id)
        if len(message.body) > MAX_BODY_BYTES:  # every consumer would park it: refuse it here
            size = len(message.body)
            raise Unpublishable(
                f"{event.type} {event.id}: {size} bytes, over the {MAX_BODY_BYTES} bytes allowed"
            )
        try:
            async with asyncio.timeout(self.timeout):
                if self._nacked:
                    await self._open_channel()
                await self._exchange.publish(message, routing_key=event.type, mandatory=True)
        except TimeoutError as error:
            raise NotPublished(f"{event.type} {event.id}: no confirm within {self.timeout} s") from error
        except DeliveryError as error:  # a nack, or returned as unroutable (PublishError: no queue bound)
            self._nacked = not isinstance(error, PublishError)  # after a nack: a fresh channel next time
            raise NotPublished(f"{event.type} {event.id}: {type(error).__name__}: {error}") from error
        except (AMQPError, ChannelInvalidStateError, ConnectionError) as error:
            raise NotPublished(f"{event.type} {event.id}: {type(error).__name__}: {error}") from error
        except RuntimeError as error:  # aiormq: a fresh channel asked of a connection still reconnecting
            raise NotPublished(f"{event.type} {event.id}: {error}") from error
            # --8<-- [end:publisher]
