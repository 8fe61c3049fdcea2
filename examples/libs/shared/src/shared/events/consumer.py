"""Consume events without losing one, applying one twice, or letting one poison the queue.

* manual ack, and only after the handler's work is done;
* a bounded prefetch, so one consumer never hoards the queue;
* idempotent by event id: a Redis claim (``SET NX``) taken before the handler runs and
  turned into a record (with expiry) after it, so a redelivered or republished event is
  handled once, also when two copies arrive at the same time;
* a failing handler, and Redis being unreachable, are retried later through retry queues
  with growing delays (``RETRY_DELAYS_MS``), never requeued at full speed;
* a message no retry can fix (malformed, unknown type or version, a permanent error) goes
  to the parking lot with the reason in its headers, and the queue keeps flowing;
* callbacks, not ``queue.iterator()``: aio-pika's robust queue re-registers a callback
  consumer after a reconnect, and OpenTelemetry's aio-pika instrumentation keeps the trace
  context only for callbacks (opentelemetry-python-contrib #2892).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from types import TracebackType
from typing import Protocol, Self

import aio_pika
import aiormq
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue, AbstractRobustConnection
from aio_pika.exceptions import AMQPError, ChannelInvalidStateError
from opentelemetry import context, trace
from prometheus_client import Counter, Gauge, Histogram
from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.events.envelope import EVENTS, Envelope, Event, Registry, Rejected, decode
from shared.events.publisher import ConfirmedChannel
from shared.events.topology import DEAD, RETRY, RETRY_DELAYS_MS, Queues, declare, retry_queue
from shared.lifecycle import pause
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


class NotConsuming(Exception):
    """The consumer is not registered with the broker: nothing arrives, however long one waits."""


HANDLING, DONE = b"handling", b"done"


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
        retry_delays_ms: tuple[int, ...] = RETRY_DELAYS_MS,
        remember_seconds: int = 7 * 24 * 3600,
        remember_prefix: str = "events:",
        claim_seconds: int = 10,
        settle_pause: float = 1.0,
        deduplicate: bool = True,
        publish_timeout: float = 5.0,
        drain_timeout: float = 20.0,
        watch_interval: float = 15.0,
        stall_seconds: float = 120.0,
        registry: Registry = EVENTS,
    ) -> None:
        self.url = url
        self.name = name
        self.routing_keys = routing_keys
        self.handler = handler
        self.redis = redis
        self.prefetch = prefetch
        self.retry_delays_ms = retry_delays_ms
        self.remember_seconds = remember_seconds
        self.remember_prefix = remember_prefix
        self.claim_seconds = claim_seconds  # renewed while the handler runs; lapses this long after a crash
        self.settle_pause = settle_pause  # before giving a message back that could not be settled
        self.deduplicate = deduplicate  # False only to watch what it prevents (the fault tests do)
        self.publish_timeout = publish_timeout  # for a retry or parking copy's confirm
        self.drain_timeout = drain_timeout  # how long a stop waits for the messages in hand
        self.watch_interval = watch_interval
        self.stall_seconds = stall_seconds  # not consuming for this long: the process fails, to restart
        self.registry = registry  # the event types and versions this consumer reads
        self._connection: AbstractRobustConnection | None = None
        self._copies: ConfirmedChannel | None = None
        self._queues: Queues | None = None
        self._tag: str | None = None
        self._in_flight: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Self:
        self._connection = await aio_pika.connect_robust(self.url)
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=self.prefetch)
        # Retry and parking copies go out on a channel of their own, confirmed, and a copy no queue
        # took comes back as an error: the original is acked only once its copy is safe.
        self._copies = ConfirmedChannel(self._connection)
        self._queues = await declare(channel, self.name, self.routing_keys, self.retry_delays_ms)
        self._tag = await self._queues.main.consume(self._on_message)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Stop taking messages, let the ones in hand finish, then close (the broker requeues the rest)."""
        # Every step is bounded: a channel aio-pika is still restoring can leave a call waiting forever,
        # and a stop must end within the orchestrator's grace period (30 s by default).
        if self._queues is not None and self._tag is not None:
            # If the channel is already gone, nothing more will arrive anyway.
            with contextlib.suppress(AMQPError, ChannelInvalidStateError, TimeoutError):
                async with asyncio.timeout(self.publish_timeout):
                    await self._queues.main.cancel(self._tag)
        if self._in_flight:
            await asyncio.wait(self._in_flight, timeout=self.drain_timeout)
        if self._connection is not None:
            with contextlib.suppress(AMQPError, ChannelInvalidStateError, TimeoutError):
                async with asyncio.timeout(self.publish_timeout):
                    await self._connection.close()

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        # A dropped channel cancels this callback. The handling must not stop half-way: its effect
        # (a Telegram message) may have happened and not yet be recorded, and a redelivery would
        # repeat it. So it runs shielded, and closing the consumer waits for it.
        handling = asyncio.create_task(self._process(message))
        self._in_flight.add(handling)
        handling.add_done_callback(self._in_flight.discard)
        await asyncio.shield(handling)

    async def _process(self, message: AbstractIncomingMessage) -> None:
        # aio-pika's instrumentation has started a consumer span from the message headers. Without it,
        # attach them here. Either way a malformed traceparent starts a new trace and is logged.
        carried = context_from(message.headers or {}, f"{self.name} message {message.message_id}")
        attached = None if trace.get_current_span().get_span_context().is_valid else context.attach(carried)
        request_id = REQUEST_ID.set(message.message_id)
        try:
            with SECONDS.labels(self.name).time():
                await self._handle(message)
        except Exception:
            # A retry or parking copy the broker refused: give the message back, after a pause so
            # the delivery limit is not spent at full speed; the broker keeps it meanwhile.
            log.exception("%s: could not settle message %s; requeueing", self.name, message.message_id)
            OUTCOMES.labels(self.name, "requeued").inc()
            await asyncio.sleep(self.settle_pause)
            await _settle(message.nack(requeue=True))
        finally:
            REQUEST_ID.reset(request_id)
            if attached is not None:
                context.detach(attached)

    # --8<-- [start:watch]
    async def check(self) -> None:
        """A readiness check: is this consumer registered with the broker on an open channel?

        aio-pika restores a consumer after a reconnect, if it can; when it cannot (the broker
        refuses the connection, a restore fails: aio-pika #668), it only logs and tries again.
        """
        assert self._queues is not None
        channel = self._queues.main.channel
        if channel.is_closed:  # reconnecting, or gave up (asking for it would wait for the reconnect)
            raise NotConsuming(f"{self.name}: no open channel")
        try:
            async with asyncio.timeout(1):
                underlay = await channel.get_underlay_channel()
        except (AMQPError, ChannelInvalidStateError, TimeoutError) as error:
            raise NotConsuming(f"{self.name}: no open channel ({type(error).__name__})") from error
        if (
            underlay.is_closed
            or not isinstance(underlay, aiormq.Channel)
            or self._tag not in underlay.consumers
        ):
            raise NotConsuming(f"{self.name}: the broker does not deliver to this consumer")

    async def watch(self, stop: asyncio.Event) -> None:
        """A background job: export the queue depths; fail once not consuming for ``stall_seconds``,
        so the process exits and is restarted, rather than stay up and silent."""
        assert self._queues is not None
        since: float | None = None
        while not stop.is_set():
            try:
                await self.check()
                since = None
                await self._export_depths(self._queues.main, self._queues.parking)
            except NotConsuming:
                now = time.monotonic()
                since = now if since is None else since
                if now - since >= self.stall_seconds:
                    raise
                log.warning("%s: not consuming for %.0f s", self.name, now - since)
            await pause(stop, self.watch_interval)
            # --8<-- [end:watch]

    async def _export_depths(self, *queues: AbstractQueue) -> None:
        for queue in queues:
            try:
                async with asyncio.timeout(self.publish_timeout):  # waits out a reconnect otherwise
                    declared = await queue.declare()  # same arguments: a no-op that reports the count
                WAITING.labels(queue.name).set(declared.message_count or 0)
            except (AMQPError, ChannelInvalidStateError, TimeoutError) as error:
                log.warning("%s: could not read the depth of %s: %s", self.name, queue.name, error)

    async def _handle(self, message: AbstractIncomingMessage) -> None:
        try:
            event, data = decode(message.body, message.content_type, self.registry)
        except Rejected as rejected:
            await self._park(message, rejected.reason)
            return
        key = f"{self.remember_prefix}{self.name}:{event.id}"
        if self.deduplicate and not await self._claim(key, message):
            return
        try:
            async with self._renewed(key):
                await self.handler(event, data)
        except Exception as error:
            if self.deduplicate:
                with contextlib.suppress(RedisError):  # unreachable: the claim lapses by itself
                    await self.redis.delete(key)
            if isinstance(error, Permanent):
                await self._park(message, f"permanent: {error}")
            else:
                await self._retry_or_park(message, error)
            return
        if self.deduplicate:
            await self._remember(key)
        OUTCOMES.labels(self.name, "acked").inc()
        # One line per event handled, in the event's trace: what an operator greps for an order. Its
        # ids only: a payload may one day carry what must not reach the logs.
        ids = {field: value for field, value in data.model_dump(mode="json").items() if field.endswith("_id")}
        log.info(
            "%s: handled %s %s %s", self.name, event.type, event.id, json.dumps(ids, separators=(",", ":"))
        )
        await _settle(message.ack())

    async def _claim(self, key: str, message: AbstractIncomingMessage) -> bool:
        """Claim the event for this delivery; ``False`` once the message has been settled otherwise."""
        try:
            earlier = await self.redis.set(key, HANDLING, nx=True, ex=self.claim_seconds, get=True)
        except RedisError as error:  # cannot tell whether it was handled: try again later
            await self._retry_or_park(message, error)
            return False
        if earlier in (HANDLING, HANDLING.decode()):  # look again shortly: its handler finishes or dies
            if self.retry_delays_ms:
                await self._retry(message, attempt=_attempt(message), delay_ms=self.retry_delays_ms[0])
            else:
                await asyncio.sleep(self.settle_pause)
                await _settle(message.nack(requeue=True))
            return False
        if earlier is not None:  # done (any other value: a record written by an earlier version)
            OUTCOMES.labels(self.name, "duplicate").inc()
            await _settle(message.ack())
            return False
        return True

    @asynccontextmanager
    async def _renewed(self, key: str) -> AsyncIterator[None]:
        """Keep the claim while the handler runs; if the process dies, it lapses in ``claim_seconds``."""

        async def renew() -> None:
            while True:
                await asyncio.sleep(self.claim_seconds / 3)
                with contextlib.suppress(RedisError):
                    await self.redis.expire(key, self.claim_seconds)

        renewing = asyncio.create_task(renew()) if self.deduplicate else None
        try:
            yield
        finally:
            if renewing is not None:
                renewing.cancel()

    async def _remember(self, key: str, within: float = 60.0) -> None:
        """Mark the event handled. The effect has happened: through a Redis restart, keep trying
        (up to ``within`` seconds) rather than let a redelivery repeat it."""
        deadline = asyncio.get_running_loop().time() + within
        while True:
            try:
                await self.redis.set(key, DONE, ex=self.remember_seconds)
                return
            except RedisError:
                if asyncio.get_running_loop().time() > deadline:
                    raise
                log.warning("%s: cannot record %s in Redis yet; trying again", self.name, key)
                await asyncio.sleep(0.5)
        # --8<-- [end:consumer]

    # --8<-- [start:retry]
    async def _retry_or_park(self, message: AbstractIncomingMessage, error: Exception) -> None:
        attempt = _attempt(message)
        if attempt > len(self.retry_delays_ms):
            await self._park(message, f"gave up after {attempt} attempts: {type(error).__name__}: {error}")
            return
        log.warning(
            "%s: attempt %d of %s failed (%s); retrying", self.name, attempt, message.message_id, error
        )
        await self._retry(message, attempt + 1, self.retry_delays_ms[attempt - 1])

    async def _retry(self, message: AbstractIncomingMessage, attempt: int, delay_ms: int) -> None:
        """Send a copy (numbered ``attempt``) through the retry queue of ``delay_ms``; then ack."""
        assert self._copies is not None
        copy = _copy(message, {"x-attempt": attempt})
        key = retry_queue(self.name, delay_ms)
        async with asyncio.timeout(self.publish_timeout):  # a reconnecting channel can hang (aio-pika #636)
            await self._copies.publish(copy, RETRY, routing_key=key)
        OUTCOMES.labels(self.name, "retried").inc()
        await _settle(message.ack())  # only after the broker confirmed the copy

    async def _park(self, message: AbstractIncomingMessage, reason: str) -> None:
        assert self._copies is not None
        log.error("%s: parking message %s: %s", self.name, message.message_id, reason)
        headers: dict[str, int | str] = {
            "x-parking-reason": reason[:500],
            "x-parked-at": int(time.time()),
            "x-parked-by": self.name,
        }
        copy = _copy(message, headers)
        async with asyncio.timeout(self.publish_timeout):
            await self._copies.publish(copy, DEAD, routing_key=f"{self.name}.parking-lot")
        OUTCOMES.labels(self.name, "parked").inc()
        await _settle(message.ack())
        # --8<-- [end:retry]


def _attempt(message: AbstractIncomingMessage) -> int:
    return int(str((message.headers or {}).get("x-attempt", 1)))


def _copy(message: AbstractIncomingMessage, headers: dict[str, int | str]) -> aio_pika.Message:
    return aio_pika.Message(
        body=message.body,
        content_type=message.content_type,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=message.message_id,
        correlation_id=message.correlation_id,
        type=message.type if message.type in EVENTS.current else "unknown",
        headers={**(message.headers or {}), **headers},
    )


async def _settle(outcome: Awaitable[None]) -> None:
    """Ack or nack; if the channel died meanwhile the broker redelivers, which is safe here."""
    try:
        await outcome
    except (AMQPError, ChannelInvalidStateError) as error:
        log.warning("could not settle a message (%s); it will be redelivered", error)


class ConsumerSettings(Protocol):
    """What a consuming service's settings say about all of its consumers (read-only)."""

    @property
    def retry_delays_ms(self) -> tuple[int, ...]: ...
    @property
    def redis_prefix(self) -> str: ...
    @property
    def deduplicate_events(self) -> bool: ...


def consumers_for(settings: ConsumerSettings, redis: Redis) -> partial[EventConsumer]:
    """:class:`EventConsumer` with the service's settings filled in; each consumer adds its queue,
    routing keys and handler."""
    return partial(
        EventConsumer,
        redis=redis,
        retry_delays_ms=settings.retry_delays_ms,
        remember_prefix=settings.redis_prefix,
        deduplicate=settings.deduplicate_events,
    )
